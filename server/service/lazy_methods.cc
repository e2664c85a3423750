// weft.v1.Orchestrator's lazy value methods: adapters from RPCs to the
// LazyRegistry.

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/errors.h"
#include "server/common/proto_time.h"
#include "server/engine/cancellation.h"
#include "server/plan/compiler.h"
#include "server/service/orchestrator_service.h"
#include "server/service/reactor.h"
#include "server/service/reply.h"
#include "server/service/request_parser.h"
#include "server/store/task_store.h"

namespace weft::service {

// CreateLazyValue: a raw method, so its plan is parsed and depth-checked
// like Run's (on the large-request thread for big requests), then compiled
// with the registry as its lazy resolver.
class OrchestratorService::CreateLazyValueReactor final : public UnaryReactor {
 public:
  CreateLazyValueReactor(OrchestratorService* service,
                         grpc::ByteBuffer* response)
      : UnaryReactor(kShortOnDone), service_(service), response_(response) {}

  void Start(const grpc::ByteBuffer* request) {
    absl::StatusOr<lazy::LazyRegistry*> lazies = service_->Lazies();
    if (!lazies.ok()) {
      Finish(ToGrpc(lazies.status()));
      return;
    }
    lazies_ = *lazies;
    if (absl::Status s = service_->Intake(
            *request,
            [this](const grpc::ByteBuffer& bytes) { Prepare(bytes); });
        !s.ok()) {
      Finish(ToGrpc(s));
    }
  }

  void OnDone() override {
    CalledByGrpc(this);
    delete this;
  }

 private:
  void Prepare(const grpc::ByteBuffer& bytes) {
    auto parsed = service_->ParseAndCompile<weft::v1::CreateLazyValueRequest>(
        bytes, "lazy_value.plan");
    if (!parsed.ok()) {
      Finish(ToGrpc(parsed.status()));
      return;
    }
    const weft::v1::CreateLazyValueRequest& r = *parsed->request;
    store::TaskStore* store = service_->definitions_;
    if (store == nullptr) {
      Answer(lazies_->Create(r.lazy_value_id(), r.lazy_value(),
                             std::move(parsed->plan), parsed->bytes));
      return;
    }
    const std::string name = absl::StrCat("lazyValues/", r.lazy_value_id());
    if (store->shared()) {
      // Replicas: what the others made of this id is seen first, so that
      // another definition is ALREADY_EXISTS here too.
      lazies_->Refresh(name, [this, parsed = *std::move(parsed)]() mutable {
        Declare(std::move(parsed));
      });
      return;
    }
    Declare(*std::move(parsed));
  }

  template <typename Parsed>
  void Declare(Parsed parsed) {
    const weft::v1::CreateLazyValueRequest& r = *parsed.request;
    store::TaskStore* store = service_->definitions_;
    const std::string name = absl::StrCat("lazyValues/", r.lazy_value_id());
    // A new definition is answered once the store has it; a repeat of one
    // that exists (made through the API, or by the config file) is not
    // written again.
    absl::StatusOr<weft::v1::LazyValue> created;
    {
      engine::MutexLock lock(&service_->definitions_mu_);
      const bool existed = lazies_->Get(name).ok();
      created = lazies_->Create(r.lazy_value_id(), r.lazy_value(),
                                std::move(parsed.plan), parsed.bytes);
      if (created.ok() && !existed) {
        store->PutLazyValue(
            r.lazy_value_id(), r.SerializeAsString(),
            [this, name, created = *created](absl::Status s) {
              if (s.ok()) {
                Answer(created);
                return;
              }
              // Nothing of it is kept.
              lazies_->Delete(name).IgnoreError();
              if (absl::IsAlreadyExists(s)) {
                // Replicas: another declared the id at the same moment.
                Answer(common::WithResource(
                    common::WithReason(absl::AlreadyExistsError(s.message()),
                                       common::kLazyValueExists),
                    "weft.v1.LazyValue", name));
                return;
              }
              Answer(common::WithRetryDelay(
                  common::WithReason(
                      absl::UnavailableError(absl::StrCat(
                          "the lazy value could not be stored, so it was not "
                          "created: ",
                          s.message())),
                      common::kTaskStoreUnavailable),
                  absl::Seconds(1)));
            });
        return;
      }
    }
    Answer(std::move(created));
  }

  void Answer(const absl::StatusOr<weft::v1::LazyValue>& created) {
    if (!created.ok()) {
      Finish(ToGrpc(created.status()));
      return;
    }
    Finish(ToGrpc(SerializeResponse(*created, response_)));
  }

  OrchestratorService* const service_;
  grpc::ByteBuffer* const response_;
  lazy::LazyRegistry* lazies_ = nullptr;
};

grpc::ServerUnaryReactor* OrchestratorService::CreateLazyValue(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  absl::StatusOr<auth::Principal> caller =
      AdminCaller(*context, "CreateLazyValue");
  if (!caller.ok()) return Refuse(context, caller.status());
  auto* reactor = new CreateLazyValueReactor(this, response);
  reactor->Start(request);
  return Handed(reactor);
}

// ResolveLazyValue: waits for the value; a caller who cancels or whose
// deadline passes leaves (the computation goes on for the others).
class OrchestratorService::ResolveReactor final : public UnaryReactor {
 public:
  ResolveReactor(weft::v1::ResolveLazyValueResponse* response,
                 engine::MemoryBudget* inflight)
      : UnaryReactor(kShortOnDone), response_(response), charge_(inflight) {}

  void Start(lazy::LazyRegistry& lazies, const std::string& name) {
    // The reactor lives until OnDone, which comes after Finish: the
    // callback below may finish it inline.
    lazies.ResolveShared(
        name, source_.token(),
        [this](absl::StatusOr<lazy::LazyRegistry::Resolved> v) {
          if (!v.ok()) {
            Finish(ToGrpc(v.status()));
            return;
          }
          const lazy::LazyRegistry::Cached& cached = *v->cached;
          // The answer's copy of the shared value, until it is sent.
          const int64_t bytes = cached.charge.bytes();
          if (!charge_.TryAdd(bytes)) {
            Finish(ToGrpc(charge_.Refusal(bytes, "this answer")));
            return;
          }
          *response_->mutable_value() = cached.value;
          response_->set_cache_hit(v->cache_hit);
          response_->set_generation(v->generation);
          common::SetTimestamp(v->computed_at,
                               response_->mutable_compute_time());
          Finish(grpc::Status::OK);
        });
  }

  void OnCancel() override {
    CalledByGrpc(this);
    source_.Cancel(common::WithReason(
        absl::CancelledError("the caller went away"), common::kRunCancelled));
  }
  void OnDone() override {
    CalledByGrpc(this);
    delete this;
  }

 private:
  weft::v1::ResolveLazyValueResponse* const response_;
  engine::MemoryCharge charge_;
  engine::CancellationSource source_;
};

grpc::ServerUnaryReactor* OrchestratorService::ResolveLazyValue(
    grpc::CallbackServerContext* context,
    const weft::v1::ResolveLazyValueRequest* request,
    weft::v1::ResolveLazyValueResponse* response) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  absl::StatusOr<lazy::LazyRegistry*> lazies = Lazies();
  if (!lazies.ok()) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpc(lazies.status()));
    return Handed(reactor);
  }
  auto* reactor = new ResolveReactor(response, inflight_);
  reactor->Start(**lazies, request->name());
  return Handed(reactor);
}

grpc::ServerUnaryReactor* OrchestratorService::GetLazyValue(
    grpc::CallbackServerContext* context,
    const weft::v1::GetLazyValueRequest* request,
    weft::v1::LazyValue* response) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  absl::StatusOr<lazy::LazyRegistry*> lazies = Lazies();
  if (!lazies.ok()) return Answer(context, {lazies.status()}, response);
  auto* reactor = new ChargedReactor(
      inflight_, options_.max_outcome_bytes,
      "its plan and value together are too large: read the value alone with "
      "ResolveLazyValue");
  absl::StatusOr<weft::v1::LazyValue> value =
      (*lazies)->Get(request->name(), &reactor->charge);
  // Its definition is for admins.
  if (value.ok() && !caller->admin()) value->clear_plan();
  return reactor->Answer(std::move(value), response);
}

grpc::ServerUnaryReactor* OrchestratorService::ResetLazyValue(
    grpc::CallbackServerContext* context,
    const weft::v1::ResetLazyValueRequest* request,
    weft::v1::LazyValue* response) {
  absl::StatusOr<auth::Principal> caller =
      AdminCaller(*context, "ResetLazyValue");
  if (!caller.ok()) return Refuse(context, caller.status());
  absl::StatusOr<lazy::LazyRegistry*> lazies = Lazies();
  if (!lazies.ok()) return Answer(context, {lazies.status()}, response);
  if (lazy_sync_ == nullptr || !plan::IsLazyValueName(request->name())) {
    return Answer(context, (*lazies)->Reset(request->name()), response);
  }
  // Replicas: the reset is counted in the store; this replica forgets its
  // cached value once it is written, every other when it sees the count
  // change.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto answer = [reactor, response](absl::StatusOr<weft::v1::LazyValue> v) {
    if (v.ok()) *response = *std::move(v);
    reactor->Finish(ToGrpc(v.status()));
  };
  lazy::LazyRegistry* registry = *lazies;
  lazy::LazySync* sync = lazy_sync_;
  const std::string name = request->name();
  registry->Refresh(name, [registry, sync, name, answer]() {
    if (absl::Status exists = registry->Get(name).status(); !exists.ok()) {
      answer(exists);
      return;
    }
    sync->Reset(name, [registry, name, answer](absl::Status s) {
      if (!s.ok()) {
        answer(common::WithRetryDelay(
            common::WithReason(
                absl::UnavailableError(
                    absl::StrCat("the reset could not be stored, so no replica "
                                 "forgot the value: ",
                                 s.message())),
                common::kTaskStoreUnavailable),
            absl::Seconds(1)));
        return;
      }
      answer(registry->Get(name));
    });
  });
  return Handed(reactor);
}

grpc::ServerUnaryReactor* OrchestratorService::ListLazyValues(
    grpc::CallbackServerContext* context,
    const weft::v1::ListLazyValuesRequest* request,
    weft::v1::ListLazyValuesResponse* response) {
  absl::StatusOr<auth::Principal> caller = Caller(*context);
  if (!caller.ok()) return Refuse(context, caller.status());
  absl::StatusOr<weft::v1::ListLazyValuesResponse> result;
  absl::StatusOr<lazy::LazyRegistry*> lazies = Lazies();
  if (!lazies.ok()) return Answer(context, {lazies.status()}, response);
  auto* reactor = new ChargedReactor(
      inflight_, options_.max_outcome_bytes,
      "read its lazy values one at a time with ResolveLazyValue");
  absl::StatusOr<lazy::LazyRegistry::Page> page =
      (*lazies)->List(request->page_size(), request->page_token(),
                      options_.max_outcome_bytes, &reactor->charge);
  if (!page.ok()) {
    result = page.status();
  } else {
    result.emplace();
    for (weft::v1::LazyValue& v : page->values) {
      if (!caller->admin()) v.clear_plan();
      *result->add_lazy_values() = std::move(v);
    }
    result->set_next_page_token(page->next_page_token);
  }
  return reactor->Answer(std::move(result), response);
}

grpc::ServerUnaryReactor* OrchestratorService::DeleteLazyValue(
    grpc::CallbackServerContext* context,
    const weft::v1::DeleteLazyValueRequest* request,
    google::protobuf::Empty* response) {
  absl::StatusOr<auth::Principal> caller =
      AdminCaller(*context, "DeleteLazyValue");
  if (!caller.ok()) return Refuse(context, caller.status());
  absl::StatusOr<lazy::LazyRegistry*> lazies = Lazies();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!lazies.ok() || definitions_ == nullptr ||
      !plan::IsLazyValueName(request->name())) {
    reactor->Finish(ToGrpc(lazies.ok() ? (*lazies)->Delete(request->name())
                                       : lazies.status()));
    return Handed(reactor);
  }
  // Erased from the store too (also when this process does not have it,
  // so that a retry after a failed erasure completes it); answered once
  // the store has.
  engine::MutexLock lock(&definitions_mu_);
  absl::Status deleted = (*lazies)->Delete(request->name());
  definitions_->EraseLazyValue(
      request->name().substr(sizeof("lazyValues/") - 1),
      [reactor, deleted = std::move(deleted)](absl::Status s) {
        if (!s.ok()) {
          s = common::WithReason(
              absl::UnavailableError(absl::StrCat(
                  "the lazy value is gone from this weftd, but the store "
                  "could not forget it, so it would come back at the next "
                  "start: ",
                  s.message(), ". Retry the delete")),
              common::kTaskStoreUnavailable);
        }
        reactor->Finish(ToGrpc(s.ok() ? deleted : s));
      });
  return Handed(reactor);
}

}  // namespace weft::service

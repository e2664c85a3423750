// The built-in handlers: value, sleep, fail, hash.

#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "openssl/sha.h"
#include "server/common/errors.h"
#include "server/engine/sleep.h"
#include "server/handlers/registry.h"

namespace weft::handlers {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

Value NullValue() {
  Value v;
  v.set_null_value(google::protobuf::NULL_VALUE);
  return v;
}

// A handler whose Call is built from the args by a function.
template <typename CallT>
class SimpleHandler : public Handler {
 public:
  explicit SimpleHandler(HandlerInfo info) : info_(std::move(info)) {}
  const HandlerInfo& info() const override { return info_; }
  absl::StatusOr<std::unique_ptr<Call>> Prepare(
      const Struct& args) const override {
    return std::make_unique<CallT>(Args(args));
  }

 private:
  HandlerInfo info_;
};

// value: returns args.value at once.
class ValueCall : public Call {
 public:
  explicit ValueCall(const Args& args) : value_(*args.Find("value")) {}
  void Start(const CallContext&, CallDone done) const override {
    std::move(done)(value_);
  }

 private:
  const Value& value_;
};

// sleep: waits args.duration on a timer (no thread), then returns args.value
// or null. Cancellation ends it at once.
class SleepCall : public Call {
 public:
  explicit SleepCall(const Args& args)
      : duration_(args.Duration("duration")), value_(args.Find("value")) {}
  void Start(const CallContext& ctx, CallDone done) const override {
    engine::SleepFor(
        ctx.env, ctx.token, duration_,
        [this, done = std::move(done)](absl::Status s) mutable {
          if (!s.ok()) {
            std::move(done)(std::move(s));
          } else {
            std::move(done)(value_ != nullptr ? *value_ : NullValue());
          }
        });
  }

 private:
  const absl::Duration duration_;
  const Value* const value_;
};

// fail: fails with args.code and args.message, after args.after if given.
class FailCall : public Call {
 public:
  explicit FailCall(const Args& args)
      : error_(common::WithReason(
            absl::Status(args.Code("code"),
                         args.String("message",
                                     "failed as the plan asked "
                                     "(handler \"fail\")")),
            common::kFailedByPlan)),
        after_(args.Duration("after")) {}
  void Start(const CallContext& ctx, CallDone done) const override {
    if (after_ <= absl::ZeroDuration()) {
      std::move(done)(error_);
      return;
    }
    engine::SleepFor(ctx.env, ctx.token, after_,
                     [this, done = std::move(done)](absl::Status s) mutable {
                       std::move(done)(s.ok() ? error_ : std::move(s));
                     });
  }

 private:
  const absl::Status error_;
  const absl::Duration after_;
};

// hash: SHA-256 of args.data, then of each digest again, args.rounds times in
// all; the hex digest. CPU work: it blocks, so it runs on a thread pool, and
// polls its token between rounds.
class HashCall : public Call {
 public:
  explicit HashCall(const Args& args)
      : data_(args.String("data")), rounds_(args.Integer("rounds", 1)) {}
  void Start(const CallContext& ctx, CallDone done) const override {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data_.data()), data_.size(),
           digest);
    for (int64_t i = 1; i < rounds_; ++i) {
      if ((i & 1023) == 0 && ctx.token.cancelled()) {
        std::move(done)(ctx.token.reason());
        return;
      }
      SHA256(digest, sizeof(digest), digest);
    }
    Value v;
    v.set_string_value(absl::BytesToHexString(absl::string_view(
        reinterpret_cast<const char*>(digest), sizeof(digest))));
    std::move(done)(std::move(v));
  }

 private:
  const std::string data_;
  const int64_t rounds_;
};

// Every built-in handler.
std::vector<std::unique_ptr<Handler>> BuiltinHandlers() {
  std::vector<std::unique_ptr<Handler>> handlers;
  handlers.push_back(std::make_unique<SimpleHandler<ValueCall>>(HandlerInfo{
      .name = "value",
      .description = "Returns args.value at once.",
      .args = {{.name = "value",
                .type = ArgType::kAny,
                .required = true,
                .description = "The value to return; any JSON value."}},
      .result_arg = "value",
  }));
  handlers.push_back(std::make_unique<SimpleHandler<SleepCall>>(HandlerInfo{
      .name = "sleep",
      .description = "Waits args.duration without holding a thread, then "
                     "returns args.value (null if absent). Ends at once "
                     "when cancelled.",
      .args = {{.name = "duration",
                .type = ArgType::kDuration,
                .required = true,
                .description = "How long to wait, like \"0.3s\"."},
               {.name = "value",
                .type = ArgType::kAny,
                .description = "What to return; null if absent."}},
      .result_arg = "value",
  }));
  handlers.push_back(std::make_unique<SimpleHandler<FailCall>>(HandlerInfo{
      .name = "fail",
      .description = "Fails with args.code and args.message, after "
                     "args.after if given.",
      .args = {{.name = "code",
                .type = ArgType::kCode,
                .required = true,
                .description = "The canonical status code name, like "
                               "\"UNAVAILABLE\"; not OK."},
               {.name = "message",
                .type = ArgType::kString,
                .description = "The error message; a default names the "
                               "handler."},
               {.name = "after",
                .type = ArgType::kDuration,
                .description = "Wait this long first, like \"0.1s\"; "
                               "fails at once if absent."}},
  }));
  handlers.push_back(std::make_unique<SimpleHandler<HashCall>>(HandlerInfo{
      .name = "hash",
      .description = "SHA-256 of args.data, hashed again args.rounds "
                     "times in all; returns the hex digest. CPU work: runs "
                     "on a thread pool and stops between rounds when "
                     "cancelled.",
      .args = {{.name = "data",
                .type = ArgType::kString,
                .required = true,
                .description = "The bytes to hash, as a string."},
               {.name = "rounds",
                .type = ArgType::kInteger,
                .description = "How many times to hash, 1 to "
                               "100000000; 1 if absent.",
                .min = 1,
                .max = 100'000'000}},
      .blocking = true,
  }));
  return handlers;
}

}  // namespace

absl::Status RegisterBuiltinHandlers(HandlerRegistry& registry) {
  for (std::unique_ptr<Handler>& handler : BuiltinHandlers()) {
    if (absl::Status s = registry.Register(std::move(handler)); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace weft::handlers

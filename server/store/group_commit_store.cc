#include "server/store/group_commit_store.h"

#include <cstdlib>
#include <utility>

namespace weft::store {

GroupCommitStore::~GroupCommitStore() {
  // A backend that forgot StopWriter would have its Apply called after its
  // members were gone.
  if (writer_.joinable()) std::abort();
}

void GroupCommitStore::StartWriter() {
  writer_ = std::thread([this] { WriterLoop(); });
}

void GroupCommitStore::StopWriter() {
  {
    engine::MutexLock lock(&mu_);
    stopping_ = true;
    work_.SignalAll();
  }
  if (writer_.joinable()) writer_.join();
}

void GroupCommitStore::LoadTask(std::shared_ptr<const weft::v1::Task> task,
                                uint64_t position) {
  table_.Put(std::move(task), position);
}

void GroupCommitStore::LoadJournal(std::string name, NodeJournal journal) {
  engine::MutexLock lock(&mu_);
  journals_[std::move(name)] = std::move(journal);
}

void GroupCommitStore::LoadLazyValue(std::string id, std::string request) {
  lazy_values_.emplace_back(std::move(id), std::move(request));
}

void GroupCommitStore::Enqueue(Op op) {
  engine::MutexLock lock(&mu_);
  queue_.push_back(std::move(op));
  work_.Signal();
}

void GroupCommitStore::Write(std::shared_ptr<const weft::v1::Task> task,
                             WriteDone done) {
  std::string name = task->name();
  Enqueue(Op{.kind = Op::Kind::kWrite,
             .name = std::move(name),
             .done = std::move(done),
             .task = std::move(task)});
}

void GroupCommitStore::Erase(std::string name, WriteDone done) {
  Enqueue(Op{.kind = Op::Kind::kErase,
             .name = std::move(name),
             .done = std::move(done)});
}

void GroupCommitStore::Journal(
    absl::string_view name, int32_t node,
    std::shared_ptr<const weft::v1::NodeOutcome> outcome, WriteDone done) {
  Enqueue(Op{.kind = Op::Kind::kJournal,
             .name = std::string(name),
             .done = std::move(done),
             .node = node,
             .outcome = std::move(outcome)});
}

void GroupCommitStore::PutLazyValue(std::string id, std::string request,
                                    WriteDone done) {
  Enqueue(Op{.kind = Op::Kind::kPutLazy,
             .name = std::move(id),
             .done = std::move(done),
             .bytes = std::move(request)});
}

void GroupCommitStore::EraseLazyValue(std::string id, WriteDone done) {
  Enqueue(Op{.kind = Op::Kind::kEraseLazy,
             .name = std::move(id),
             .done = std::move(done)});
}

void GroupCommitStore::ResetLazyValue(std::string id, ResetDone done) {
  if (!shared()) {
    std::move(done)(int64_t{0});
    return;
  }
  auto count = std::make_shared<int64_t>(0);
  Enqueue(Op{.kind = Op::Kind::kResetLazy,
             .name = std::move(id),
             .done =
                 [count, done = std::move(done)](absl::Status s) mutable {
                   if (s.ok()) {
                     std::move(done)(*count);
                   } else {
                     std::move(done)(std::move(s));
                   }
                 },
             .count = count});
}

std::vector<std::pair<std::string, std::string>> GroupCommitStore::LazyValues()
    const {
  return lazy_values_;
}

NodeJournal GroupCommitStore::TakeJournal(absl::string_view name) {
  engine::MutexLock lock(&mu_);
  auto it = journals_.find(name);
  if (it == journals_.end()) return {};
  NodeJournal journal = std::move(it->second);
  journals_.erase(it);
  return journal;
}

std::shared_ptr<const weft::v1::Task> GroupCommitStore::Get(
    absl::string_view name) const {
  return table_.Get(name);
}

void GroupCommitStore::Scan(
    uint64_t before,
    absl::FunctionRef<bool(uint64_t, const weft::v1::Task&)> fn) const {
  table_.Scan(before, fn);
}

size_t GroupCommitStore::size() const { return table_.size(); }

int64_t GroupCommitStore::commits() const {
  engine::MutexLock lock(&mu_);
  return commits_;
}

void GroupCommitStore::WriterLoop() {
  for (;;) {
    Batch batch;
    {
      engine::MutexLock lock(&mu_);
      while (queue_.empty() && !stopping_) work_.Wait(&mu_);
      if (queue_.empty()) return;  // Stopping, and every write applied.
      // Every write waiting now joins this transaction.
      batch.swap(queue_);
    }
    Positions positions;
    absl::Status s = BeforeBatch();
    if (s.ok()) s = Apply(batch, &positions);
    if (s.ok() && keep_table_) {
      // Reads see the writes before their `done` runs.
      for (const Op& op : batch) {
        if (!op.refused.ok()) continue;
        if (op.kind == Op::Kind::kErase) {
          table_.Remove(op.name);
        } else if (op.kind == Op::Kind::kWrite) {
          auto it = positions.find(op.name);
          table_.Put(op.task, it != positions.end() ? it->second : 0);
        }
      }
    }
    if (s.ok()) {
      engine::MutexLock lock(&mu_);
      ++commits_;
    }
    for (Op& op : batch) std::move(op.done)(s.ok() ? op.refused : s);
    AfterBatch(batch, s);
  }
}

}  // namespace weft::store

#include "client/task_commands.h"

#include <unistd.h>

#include <iostream>
#include <optional>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/cli.h"
#include "client/cli_support.h"
#include "client/timeline.h"
#include "google/protobuf/util/time_util.h"
#include "server/common/serialize.h"

ABSL_DECLARE_FLAG(absl::Duration, timeout);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(bool, timeline);

ABSL_FLAG(std::string, request_id, "",
          "weft task create: makes creating again with the same plan return "
          "the same task.");
ABSL_FLAG(bool, wait, false,
          "weft task create: wait for the task to end, then print it.");
ABSL_FLAG(bool, watch, false,
          "weft task create: watch the task to its end, as weft task watch.");
ABSL_FLAG(bool, full, false, "weft task get: include the plan.");
ABSL_FLAG(int32_t, page_size, 0,
          "weft task list: tasks per page (the server's default when 0).");
ABSL_FLAG(std::string, page_token, "",
          "weft task list: the page to print, from a previous list.");

namespace weft::cli {

const char kTaskUsage[] =
    "  weft task create FILE|- [--label k=v]... [--request_id ID] "
    "[--wait|--watch]\n"
    "                         start a plan (or CreateTaskRequest) as a "
    "background task\n"
    "  weft task get NAME [--full] [--timeline]\n"
    "  weft task list [--state S]... [--label k=v]... [--page_size N] "
    "[--page_token T]\n"
    "  weft task wait NAME    wait for the task to end; prints it\n"
    "  weft task watch NAME   follow the task: a progress bar on a terminal, "
    "JSON lines\n"
    "                         when piped\n"
    "  weft task cancel NAME\n"
    "  weft task delete NAME  forget a task that has ended\n"
    "  weft info              the server's version, uptime, tasks, pools and "
    "caches\n";

namespace {

// How long each WaitTask call may wait; the CLI calls again until the task
// ends or --timeout passes.
constexpr absl::Duration kWaitSlice = absl::Seconds(30);

int ExitFor(const weft::v1::Task& task) {
  return task.state() == weft::v1::TASK_STATE_SUCCEEDED ? kExitOk
                                                        : kExitNotSucceeded;
}

void Print(const google::protobuf::Message& message) {
  std::cout << ToJson(message) << std::endl;
}

std::string ShortState(weft::v1::TaskState state) {
  std::string name = weft::v1::TaskState_Name(state);
  return absl::StartsWith(name, "TASK_STATE_")
             ? name.substr(sizeof("TASK_STATE_") - 1)
             : name;
}

absl::StatusOr<weft::v1::TaskState> ParseState(const std::string& text) {
  std::string upper = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(upper, "TASK_STATE_")) upper = "TASK_STATE_" + upper;
  weft::v1::TaskState state;
  if (!weft::v1::TaskState_Parse(upper, &state) ||
      state == weft::v1::TASK_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--state: unknown state \"", text,
        "\" (queued, running, succeeded, failed, cancelled, timed_out)"));
  }
  return state;
}

absl::Status AddLabels(const std::vector<std::string>& labels,
                       google::protobuf::Map<std::string, std::string>* to) {
  for (const std::string& label : labels) {
    const size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--label: expected key=value, got \"", label, "\""));
    }
    (*to)[label.substr(0, eq)] = label.substr(eq + 1);
  }
  return absl::OkStatus();
}

// When the whole command must end, or nullopt for never.
std::optional<absl::Time> CommandDeadline() {
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  if (timeout <= absl::ZeroDuration()) return std::nullopt;
  return absl::Now() + timeout;
}

absl::Duration Left(const std::optional<absl::Time>& deadline) {
  return deadline ? std::max(*deadline - absl::Now(), absl::Nanoseconds(1))
                  : absl::ZeroDuration();
}

int Wait(const client::Client& client, const std::string& name) {
  const std::optional<absl::Time> deadline = CommandDeadline();
  while (true) {
    absl::Duration wait = kWaitSlice;
    if (deadline) wait = std::min(wait, Left(deadline));
    // The call's own deadline leaves the server time to answer.
    absl::StatusOr<weft::v1::Task> task =
        client.WaitTask(name, wait, wait + absl::Seconds(10));
    if (!task.ok()) return CallFailed(task.status());
    if (client::IsTerminal(task->state())) {
      Print(*task);
      return ExitFor(*task);
    }
    if (deadline && absl::Now() >= *deadline) {
      Print(*task);
      return CallFailed(absl::DeadlineExceededError(absl::StrCat(
          name, " is still ", ShortState(task->state()), " after --timeout=",
          absl::FormatDuration(absl::GetFlag(FLAGS_timeout)))));
    }
  }
}

// Follows a task to its end: on a terminal, one line redrawn in place; when
// piped, each event as a JSON line.
int Watch(const client::Client& client, const std::string& name) {
  const bool tty = isatty(STDOUT_FILENO) == 1;
  weft::v1::Task last;
  absl::Status s = client.WatchTask(
      name, absl::GetFlag(FLAGS_timeout), [&](const weft::v1::TaskEvent& e) {
        last = e.task();
        if (!tty) {
          std::cout << common::ToCompactJson(e) << std::endl;
          return;
        }
        std::cout << "\r" << ProgressLine(e.task(), 30) << "  "
                  << absl::StrFormat("%.1fs",
                                     absl::ToDoubleSeconds(Elapsed(e.task())))
                  << "\x1b[K" << std::flush;
      });
  if (tty && !last.name().empty()) std::cout << std::endl;
  if (!s.ok()) return CallFailed(s);
  if (tty && last.outcome().has_error()) {
    std::cout << last.name() << ": " << last.outcome().error().code() << ": "
              << last.outcome().error().message() << std::endl;
  }
  return ExitFor(last);
}

int Create(const client::Client& client, const std::string& file,
           const RepeatedFlags& repeated) {
  if (absl::GetFlag(FLAGS_wait) && absl::GetFlag(FLAGS_watch)) {
    return Usage("--wait and --watch: choose one");
  }
  absl::StatusOr<std::string> text = ReadInput(file);
  if (!text.ok()) return Usage(text.status().message());
  absl::StatusOr<weft::v1::CreateTaskRequest> request =
      ParseCreateTaskRequestJson(*text);
  if (!request.ok()) {
    std::cerr << "weft: " << (file == "-" ? "stdin" : file) << ": "
              << request.status().message() << "\n";
    return kExitUsage;
  }
  if (absl::Status s = AddLabels(repeated.labels, request->mutable_labels());
      !s.ok()) {
    return Usage(s.message());
  }
  if (!absl::GetFlag(FLAGS_request_id).empty()) {
    request->set_request_id(absl::GetFlag(FLAGS_request_id));
  }
  absl::StatusOr<weft::v1::Task> task =
      client.CreateTask(*request, absl::GetFlag(FLAGS_timeout));
  if (!task.ok()) return CallFailed(task.status());
  if (absl::GetFlag(FLAGS_wait)) return Wait(client, task->name());
  if (absl::GetFlag(FLAGS_watch)) {
    if (isatty(STDOUT_FILENO) == 1) std::cout << task->name() << std::endl;
    return Watch(client, task->name());
  }
  Print(*task);
  return kExitOk;
}

int Get(const client::Client& client, const std::string& name) {
  weft::v1::GetTaskRequest request;
  request.set_name(name);
  if (absl::GetFlag(FLAGS_full)) request.set_view(weft::v1::TASK_VIEW_FULL);
  absl::StatusOr<weft::v1::Task> task =
      client.GetTask(request, absl::GetFlag(FLAGS_timeout));
  if (!task.ok()) return CallFailed(task.status());
  if (absl::GetFlag(FLAGS_timeline)) {
    std::cout << task->name() << "  " << ShortState(task->state()) << "\n";
    if (task->has_outcome()) {
      std::cout << TimelineForStdout(task->outcome()) << std::flush;
    } else {
      std::cout << "no node has started yet" << std::endl;
    }
    return kExitOk;
  }
  Print(*task);
  return kExitOk;
}

int List(const client::Client& client, const RepeatedFlags& repeated) {
  weft::v1::ListTasksRequest request;
  for (const std::string& text : repeated.states) {
    absl::StatusOr<weft::v1::TaskState> state = ParseState(text);
    if (!state.ok()) return Usage(state.status().message());
    request.add_states(*state);
  }
  if (absl::Status s = AddLabels(repeated.labels, request.mutable_labels());
      !s.ok()) {
    return Usage(s.message());
  }
  request.set_page_size(absl::GetFlag(FLAGS_page_size));
  request.set_page_token(absl::GetFlag(FLAGS_page_token));
  absl::StatusOr<weft::v1::ListTasksResponse> response =
      client.ListTasks(request, absl::GetFlag(FLAGS_timeout));
  if (!response.ok()) return CallFailed(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    Print(*response);
    return kExitOk;
  }
  std::cout << absl::StrFormat("%-38s %-10s %-15s %-20s %s\n", "NAME", "STATE",
                               "LEAVES", "CREATED", "LABELS");
  for (const weft::v1::Task& t : response->tasks()) {
    std::vector<std::string> labels;
    for (const auto& [k, v] : t.labels())
      labels.push_back(absl::StrCat(k, "=", v));
    std::sort(labels.begin(), labels.end());
    const absl::Time created = absl::FromUnixSeconds(t.create_time().seconds());
    std::cout << absl::StrFormat(
        "%-38s %-10s %-15s %-20s %s\n", t.name(), ShortState(t.state()),
        absl::StrCat(t.progress().leaves_done(), "/",
                     t.progress().leaves_total()),
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", created, absl::UTCTimeZone()),
        absl::StrJoin(labels, ","));
  }
  if (!response->next_page_token().empty()) {
    std::cout << "next page: --page_token=" << response->next_page_token()
              << "\n";
  }
  return kExitOk;
}

int Cancel(const client::Client& client, const std::string& name) {
  absl::StatusOr<weft::v1::Task> task =
      client.CancelTask(name, absl::GetFlag(FLAGS_timeout));
  if (!task.ok()) return CallFailed(task.status());
  Print(*task);
  return kExitOk;
}

int Delete(const client::Client& client, const std::string& name) {
  absl::Status s = client.DeleteTask(name, absl::GetFlag(FLAGS_timeout));
  if (!s.ok()) return CallFailed(s);
  std::cout << "deleted " << name << std::endl;
  return kExitOk;
}

}  // namespace

int TaskCommand(const client::Client& client,
                const std::vector<std::string>& args,
                const RepeatedFlags& repeated) {
  if (args.empty()) return Usage("task needs a subcommand");
  const std::string& sub = args[0];
  if (sub == "list") {
    if (args.size() != 1) return Usage("task list takes no operands");
    return List(client, repeated);
  }
  if (!repeated.states.empty()) return Usage("--state is for task list");
  if (sub == "create") {
    if (args.size() != 2) {
      return Usage("task create takes one FILE, or - for stdin");
    }
    return Create(client, args[1], repeated);
  }
  if (!repeated.labels.empty()) {
    return Usage("--label is for task create and task list");
  }
  if (sub != "get" && sub != "wait" && sub != "watch" && sub != "cancel" &&
      sub != "delete") {
    return Usage(absl::StrCat("unknown task subcommand \"", sub, "\""));
  }
  if (args.size() != 2) {
    return Usage(absl::StrCat("task ", sub, " takes one NAME"));
  }
  const std::string name = client::TaskName(args[1]);
  if (sub == "get") return Get(client, name);
  if (sub == "wait") return Wait(client, name);
  if (sub == "watch") return Watch(client, name);
  if (sub == "cancel") return Cancel(client, name);
  return Delete(client, name);
}

int Info(const client::Client& client) {
  absl::StatusOr<weft::v1::ServerInfo> info =
      client.GetServerInfo(absl::GetFlag(FLAGS_timeout));
  if (!info.ok()) return CallFailed(info.status());
  Print(*info);
  return kExitOk;
}

}  // namespace weft::cli

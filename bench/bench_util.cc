#include "bench/bench_util.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"

namespace weft::bench {

WeftdProcess::WeftdProcess(const std::string& binary,
                           const std::vector<std::string>& flags) {
  int out[2];
  if (pipe(out) != 0) std::exit(1);
  std::vector<std::string> argv = {"weftd", "--listen=127.0.0.1:0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  std::vector<char*> raw;
  for (std::string& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out[1], 1);
    execv(binary.c_str(), raw.data());
    _exit(127);
  }
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  char line[256];
  if (fgets(line, sizeof line, f) == nullptr) {
    std::cerr << "weftd did not start\n";
    std::exit(1);
  }
  address_ = line;
  address_ = address_.substr(std::string("listening on ").size());
  address_.erase(address_.find_last_not_of('\n') + 1);
}

WeftdProcess::~WeftdProcess() {
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
}

long WeftdProcess::Status(const std::string& key) const {
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      return std::stol(line.substr(key.size() + 1));
    }
  }
  return -1;
}

long WeftdProcess::WeftThreads() const {
  long n = 0;
  for (const auto& task : std::filesystem::directory_iterator(
           absl::StrCat("/proc/", pid_, "/task"))) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind("weft-", 0) == 0) ++n;
  }
  return n;
}

ThreadSampler::ThreadSampler(const WeftdProcess& weftd)
    : weftd_(weftd),
      threads_before_(weftd.Status("Threads")),
      weft_threads_before_(weftd.WeftThreads()),
      threads_max_(threads_before_),
      weft_threads_max_(weft_threads_before_) {
  thread_ = std::thread([this] {
    while (running_.load()) {
      threads_max_ = std::max(threads_max_, weftd_.Status("Threads"));
      weft_threads_max_ = std::max(weft_threads_max_, weftd_.WeftThreads());
      usleep(10'000);
    }
  });
}

void ThreadSampler::Stop() {
  running_.store(false);
  if (thread_.joinable()) thread_.join();
}

}  // namespace weft::bench

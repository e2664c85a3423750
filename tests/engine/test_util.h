// Helpers shared by the engine tests.

#ifndef WEFT_TESTS_ENGINE_TEST_UTIL_H_
#define WEFT_TESTS_ENGINE_TEST_UTIL_H_

#include <fstream>
#include <string>

namespace weft::engine::testing {

// Threads in this process, from /proc/self/status.
inline int ThreadCount() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

}  // namespace weft::engine::testing

#endif  // WEFT_TESTS_ENGINE_TEST_UTIL_H_

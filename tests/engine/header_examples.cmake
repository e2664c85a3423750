# Writes OUTPUT: one function per header in HEADERS (a ;-list) holding the
# code example of the header's opening comment, the lines between
# "// clang-format off" and "// clang-format on", so that the examples
# compile (and run, in header_examples_test.cc) as the headers show them.
# #line directives point compile errors at the header itself.
set(out "// Generated from the headers' examples by header_examples.cmake.\n")
foreach(header ${HEADERS})
  get_filename_component(name ${header} NAME_WE)
  file(STRINGS ${header} lines)
  set(in_example OFF)
  set(found OFF)
  set(n 0)
  foreach(line IN LISTS lines)
    math(EXPR n "${n} + 1")
    if(line STREQUAL "// clang-format off" AND NOT found)
      set(in_example ON)
      set(found ON)
      math(EXPR first "${n} + 1")
      string(APPEND out "\nvoid Example_${name}(ExampleScope& scope) {\n"
             "  [[maybe_unused]] auto& [loop, env, token, caller_token, "
             "parent_token, items] = scope;\n"
             "#line ${first} \"${header}\"\n")
    elseif(line STREQUAL "// clang-format on" AND in_example)
      set(in_example OFF)
      string(APPEND out "}\n")
    elseif(in_example)
      string(REGEX REPLACE "^//( |$)" "" code "${line}")
      string(APPEND out "${code}\n")
    endif()
  endforeach()
  if(NOT found)
    message(FATAL_ERROR "${header} has no example between clang-format off/on")
  endif()
endforeach()
file(WRITE ${OUTPUT}.tmp "${out}")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)

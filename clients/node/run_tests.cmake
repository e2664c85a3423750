# ctest's node_client (see CMakeLists.txt): checks that node and the
# packages `npm ci` installs are there, then runs `node --test test/` in DIR.
# cmake -DNODE=path/to/node -DDIR=clients/node -P run_tests.cmake
if(NOT NODE)
  message(FATAL_ERROR "node not found: install Node.js 18 or later (apt-get install nodejs npm)")
endif()
foreach(package @grpc/grpc-js @grpc/proto-loader protobufjs)
  if(NOT EXISTS "${DIR}/node_modules/${package}/package.json")
    message(FATAL_ERROR
      "${DIR}/node_modules has no ${package}: run `npm ci` in clients/node")
  endif()
endforeach()
execute_process(COMMAND "${NODE}" --test test/
                WORKING_DIRECTORY "${DIR}"
                RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "node --test test/ failed (${result})")
endif()

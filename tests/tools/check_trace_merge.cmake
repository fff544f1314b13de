# The merge tool on hand-made rank files with known clock offsets: every rank's events are in the output, their ts
# moved by the rank's offset, the processes named "rank N"; the base path finds the rank files; a file that is not a
# Braid trace fails naming it.
# -DTOOL=<braid_trace_merge> -DDATA=<tests/tools/data> -DWORK=<scratch folder>
cmake_minimum_required(VERSION 3.25)
file(MAKE_DIRECTORY ${WORK})
set(out ${WORK}/merged.json)
file(REMOVE ${out})

function(fail)
  message(FATAL_ERROR ${ARGN})
endfunction()

# The base path stands for merge.rank0.json .. merge.rank2.json.
execute_process(COMMAND ${TOOL} -o ${out} ${DATA}/merge.json RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  fail("braid_trace_merge failed (${rc}): ${err}")
endif()
file(READ ${out} merged)
string(JSON n LENGTH "${merged}" traceEvents)

# name -> "pid ts"
set(found "")
set(process_names "")
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  string(JSON ph GET "${merged}" traceEvents ${i} ph)
  string(JSON name GET "${merged}" traceEvents ${i} name)
  string(JSON pid GET "${merged}" traceEvents ${i} pid)
  if(ph STREQUAL "M")
    if(name STREQUAL "process_name")
      string(JSON pname GET "${merged}" traceEvents ${i} args name)
      list(APPEND process_names "${pid}:${pname}")
    endif()
    continue()
  endif()
  string(JSON ts GET "${merged}" traceEvents ${i} ts)
  list(APPEND found "${name}|${pid}|${ts}")
endforeach()

list(LENGTH found count)
if(NOT count EQUAL 5)
  fail("expected the 5 events of the three ranks, got ${count}: ${found}")
endif()
# The expected ts on rank 0's clock (own ts + the rank's offset), compared as numbers.
foreach(expect "F s0 mb0|0|100" "send|0|150" "recv|1|159.5" "F s1 mb0|1|189.5" "all_reduce|2|260.25")
  string(REPLACE "|" ";" parts "${expect}")
  list(GET parts 0 ename)
  list(GET parts 1 epid)
  list(GET parts 2 ets)
  set(ok FALSE)
  foreach(item ${found})
    string(REPLACE "|" ";" got "${item}")
    list(GET got 0 gname)
    list(GET got 1 gpid)
    list(GET got 2 gts)
    if(gname STREQUAL ename AND gpid EQUAL epid)
      # CMake's math is integer only: the numbers are compared as the decimals the tool writes.
      if(gts STREQUAL ets OR gts STREQUAL "${ets}.0")
        set(ok TRUE)
      else()
        fail("${ename} on rank ${epid}: ts ${gts}, expected ${ets} (its ts moved by the rank's clock offset)")
      endif()
    endif()
  endforeach()
  if(NOT ok)
    fail("no event ${ename} on rank ${epid} in ${found}")
  endif()
endforeach()

foreach(expect "0:rank 0" "1:rank 1" "2:rank 2")
  if(NOT expect IN_LIST process_names)
    fail("process name ${expect} missing: ${process_names}")
  endif()
endforeach()

# Not a Braid trace: the error names the file.
execute_process(COMMAND ${TOOL} -o ${WORK}/bad.json ${DATA}/merge.rank0.json ${DATA}/not_braid.json
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "not_braid.json' has no otherData.rank")
  fail("a file without otherData.rank must fail naming it; rc ${rc}, stderr: ${err}")
endif()
# Two files of one rank.
execute_process(COMMAND ${TOOL} -o ${WORK}/bad.json ${DATA}/merge.rank0.json ${DATA}/merge.rank0.json
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "are both rank 0")
  fail("two files of rank 0 must fail; rc ${rc}, stderr: ${err}")
endif()
message(STATUS "braid_trace_merge: ${count} events merged on rank 0's clock")

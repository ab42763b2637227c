-- One pass over a file of keys, each verified once, and the rate of that
-- pass alone. wrk's own figure is the requests over the whole -d, so a
-- pass shorter than -d would be mixed with the warm verifies after it.
--
--   wrk -t2 -c32 -d10s -s bench/verify_first_pass.lua URL/v1/keys/verify -- KEYS_FILE [THREADS]
--
-- Thread t of T verifies keys t+1, t+1+T, ...; the pass ends when every
-- thread has had as many answers as it has keys. Prints
-- "first pass: N keys in S s, R verifies/s".
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } kw_timespec;
  int clock_gettime(int clock, kw_timespec *now);
]]
local timespec = ffi.new("kw_timespec")
local function now()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) / 1e9
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  keys = {}
  for line in io.lines(args[1]) do keys[#keys + 1] = line end
  assert(#keys > 0, "no keys in " .. args[1])
  stride = tonumber(args[2] or "2")
  next_key = id
  share = math.floor((#keys - id + stride - 1) / stride)
  answered = 0
end

function request()
  started = started or now()
  local key = keys[next_key % #keys + 1]
  next_key = next_key + stride
  return wrk.format(nil, nil, nil, '{"key":"' .. key .. '"}')
end

function response()
  answered = answered + 1
  if answered == share then finished = now() end
end

function done()
  local first, last, keys_done = math.huge, 0, 0
  for _, thread in ipairs(threads) do
    if thread:get("share") == 0 then goto next_thread end
    first = math.min(first, thread:get("started"))
    local finished = thread:get("finished")
    if not finished then
      io.write("first pass: not over within -d; give it longer\n")
      return
    end
    last = math.max(last, finished)
    keys_done = keys_done + thread:get("share")
    ::next_thread::
  end
  io.write(string.format("first pass: %d keys in %.3f s, %.0f verifies/s\n", keys_done, last - first, keys_done / (last - first)))
end

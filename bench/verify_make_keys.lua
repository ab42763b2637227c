-- Makes keys as fast as the server takes them and keeps their secrets:
-- thread t appends each new key's secret to PREFIX.t, one per line.
--
--   wrk -t2 -c16 -d20s -H "Authorization: Bearer ADMIN" -s bench/verify_make_keys.lua \
--     URL/v1/projects/PROJECT/keys -- PREFIX
-- wrk.format's own headers would replace these, the -H ones among them.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  out = io.open(args[1] .. "." .. id, "w")
  made = 0
end

function request()
  made = made + 1
  local body = string.format('{"name":"bench_%d_%d","scopes":[]}', id, made)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  local secret = body:match('"secret":"([^"]+)"')
  if secret then
    out:write(secret, "\n")
    out:flush()
  end
end

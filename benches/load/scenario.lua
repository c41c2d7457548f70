-- wrk script for every scenario of benches/load.sh; LOAD_SCENARIO picks the requests:
--   get         GET wrk's URL path
--   form        POST LOAD_BODY (form-encoded) with LOAD_AUTH as Authorization
--   refresh     POST grant_type=refresh_token, each request with an unused refresh token: the
--               pool starts from LOAD_TOKENS (a file, one per line; threads take disjoint
--               slices) and every response's rotated token joins the back of the queue, so
--               each request presents the token that has waited longest (a grant is refreshed
--               again only after every other, as when each client refreshes once an hour)
--   code_flow   GET LOAD_AUTHORIZE (auto-approved), then POST the code from its redirect to
--               the token endpoint with LOAD_AUTH and LOAD_VERIFIER; LOAD_HARVEST, if set, is
--               a file prefix where each thread writes the tokens it receives (the field
--               LOAD_HARVEST_FIELD, refresh_token unless set)
--   mcp_call    POST LOAD_BODY (an MCP JSON-RPC request) in the MCP sessions LOAD_SESSIONS
--               (space-separated ids, taken in turn), as LOAD_AUTH, or, with LOAD_TOKENS, as
--               a bearer token used by no other request (the pool is not refilled); the
--               response must be 200 and contain LOAD_EXPECT
-- done() prints one line:
--   RESULT scenario=S requests=N seconds=F rps=F p50_ms=F p99_ms=F p999_ms=F non2xx=N errors=N
-- and, when a response was not the expected status, SAMPLE with its status and body start.

local scenario = os.getenv("LOAD_SCENARIO") or "get"
local auth = os.getenv("LOAD_AUTH")
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local sessions = {}
for session in string.gmatch(os.getenv("LOAD_SESSIONS") or "", "%S+") do
  table.insert(sessions, session)
end
local turn = 0

local function mcp_headers()
  turn = turn + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["Mcp-Session-Id"] = sessions[turn % #sessions + 1],
  }
  if os.getenv("LOAD_TOKENS") then
    headers["Authorization"] = "Bearer " .. (table.remove(pool) or "exhausted")
  else
    headers["Authorization"] = auth
  end
  return headers
end

local function form_headers()
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Accept"] = "application/json" }
  if auth and auth ~= "" then headers["Authorization"] = auth end
  return headers
end

local REFRESH_BODY = "grant_type=refresh_token&refresh_token="

-- A form POST whose body is `body_prefix` and `length` more characters, formatted up to those
-- characters: requests that differ only in a value of a known length are that and the value.
local function formatted_up_to(body_prefix, length)
  local request = wrk.format("POST", nil, form_headers(), body_prefix .. string.rep("x", length))
  return string.sub(request, 1, #request - length)
end

function init(args)
  bad = 0
  sample = nil
  pool = {}
  head = 1
  codes = {}
  if os.getenv("LOAD_TOKENS") then
    local i = 0
    for line in io.lines(os.getenv("LOAD_TOKENS")) do
      if i % next_thread_count() == id then table.insert(pool, line) end
      i = i + 1
    end
  end
  -- The refresh pool is a ring: a token leaves at head and its successor joins at tail, so
  -- the pool never holds more than it started with and its table never grows or rehashes.
  size = #pool
  tail = size
  -- A request that never changes is formatted once, and so is each refresh request up to its
  -- token (every token warrant issues has the same length; wrk.format for each request had
  -- cost the load tool more CPU than the rest of the script).
  if scenario == "form" then
    fixed = wrk.format("POST", nil, form_headers(), os.getenv("LOAD_BODY"))
  elseif scenario == "get" then
    fixed = wrk.format("GET", nil, { ["Accept"] = "application/json" })
  elseif scenario == "refresh" and pool[1] then
    token_length = #pool[1]
    refresh_up_to_token = formatted_up_to(REFRESH_BODY, token_length)
  elseif scenario == "code_flow" then
    authorize = wrk.format("GET", os.getenv("LOAD_AUTHORIZE"))
  end
  if scenario == "code_flow" and os.getenv("LOAD_HARVEST") then
    harvest = io.open(os.getenv("LOAD_HARVEST") .. "." .. id, "w")
    harvest:setvbuf("line")
  end
end

function next_thread_count()
  return tonumber(os.getenv("LOAD_THREADS") or "1")
end

function request()
  if fixed then
    return fixed
  elseif scenario == "mcp_call" then
    return wrk.format("POST", nil, mcp_headers(), os.getenv("LOAD_BODY"))
  elseif scenario == "refresh" then
    local token = pool[head]
    if token then
      pool[head] = nil
      head = head % size + 1
    end
    if token == nil then
      -- Pool empty (only while every token is in flight): a request that counts as bad.
      return wrk.format("POST", nil, form_headers(), REFRESH_BODY .. "exhausted")
    end
    if #token == token_length then
      return refresh_up_to_token .. token
    end
    return wrk.format("POST", nil, form_headers(), REFRESH_BODY .. token)
  elseif scenario == "code_flow" then
    local code = table.remove(codes)
    if code then
      local body = "grant_type=authorization_code&code=" .. code .. "&redirect_uri="
        .. os.getenv("LOAD_REDIRECT") .. "&code_verifier=" .. os.getenv("LOAD_VERIFIER")
      return wrk.format("POST", os.getenv("LOAD_TOKEN_PATH"), form_headers(), body)
    end
    return authorize
  end
end

-- A JSON string member of a response, found by plain substring search: a pattern match would
-- try every offset of the body (a refresh response is about 700 bytes), and cost the load tool
-- more CPU per request than the rest of the script.
local function field(body, name)
  if body == nil then return nil end
  local key = '"' .. name .. '":"'
  local _, last = string.find(body, key, 1, true)
  if last == nil then return nil end
  local close = string.find(body, '"', last + 1, true)
  return close and string.sub(body, last + 1, close - 1)
end

function response(status, headers, body)
  local expected = 200
  local location = headers["Location"] or headers["location"]
  if scenario == "code_flow" and location ~= nil then
    expected = 302
    local code = string.match(location, "[?&]code=([^&]+)")
    if code then table.insert(codes, code) end
  end
  local expect = os.getenv("LOAD_EXPECT")
  if status ~= expected or (expect and not string.find(body or "", expect, 1, true)) then
    bad = bad + 1
    if sample == nil then sample = tostring(status) .. " " .. string.sub(body or "", 1, 200) end
    return
  end
  if scenario == "refresh" then
    tail = tail % size + 1
    pool[tail] = field(body, "refresh_token")
  elseif scenario == "code_flow" and harvest and status == 200 then
    local token = field(body, os.getenv("LOAD_HARVEST_FIELD") or "refresh_token")
    if token then harvest:write(token, "\n") end
  end
end

function done(summary, latency, requests)
  local bad_total, first_sample = 0, nil
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    first_sample = first_sample or thread:get("sample")
  end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT scenario=%s requests=%d seconds=%.2f rps=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f non2xx=%d errors=%d\n",
    os.getenv("LOAD_NAME") or scenario, summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    bad_total, errors))
  if first_sample then io.write("SAMPLE ", first_sample, "\n") end
end

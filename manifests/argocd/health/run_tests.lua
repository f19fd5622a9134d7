-- Runs Argo CD health checks against their test cases with a real Lua interpreter.
--
--   lua5.4 run_tests.lua HEALTH_LUA CASES_LUA
--
-- CASES_LUA is a chunk returning { { input = "testdata/x.yaml", status = "...", message = "...",
-- obj = { ... } }, ... }: health_test.yaml and its fixtures, converted from YAML by
-- e2e/lint-manifests (Lua has no YAML parser). HEALTH_LUA runs as Argo CD runs it: a chunk
-- with the resource in the global `obj`, returning { status = ..., message = ... }.
local health_path, cases_path = arg[1], arg[2]
assert(health_path and cases_path, "usage: run_tests.lua HEALTH_LUA CASES_LUA")

local cases = assert(loadfile(cases_path))()
local failed = 0
for _, case in ipairs(cases) do
  local chunk = assert(loadfile(health_path))
  obj = case.obj -- luacheck: ignore (Argo CD's global)
  local ok, hs = pcall(chunk)
  local got_status = ok and type(hs) == "table" and hs.status or nil
  local got_message = ok and type(hs) == "table" and hs.message or nil
  if ok and got_status == case.status and (case.message == nil or got_message == case.message) then
    print(string.format("  ok   %-40s %s", case.input, got_status))
  else
    failed = failed + 1
    print(string.format("  FAIL %s", case.input))
    print(string.format("       want %s: %s", tostring(case.status), tostring(case.message)))
    if ok then
      print(string.format("       got  %s: %s", tostring(got_status), tostring(got_message)))
    else
      print("       error: " .. tostring(hs))
    end
  end
end
print(string.format("%d health cases, %d failed", #cases, failed))
if failed > 0 or #cases == 0 then
  os.exit(1)
end

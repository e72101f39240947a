-- test_jit_safety.lua: the mtt command runs LuaJIT with load forwarding off, so that code Debian
-- 12's LuaJIT miscompiles with it (tests/lua/jit_cases.lua) gives the interpreter's answers.
-- Also shows, in a plain luajit child with default settings, whether this LuaJIT still needs it.
local mtt = require 'mtt'
local T = dofile(mtt.root .. '/tests/lua/testlib.lua')
local checker = T.checker('test_jit_safety')
local check = checker.check

local status = { jit.status() }
check(status[1] == true, 'the JIT is on under mtt')
local has_fwd = false
for i = 2, #status do has_fwd = has_fwd or status[i] == 'fwd' end
check(not has_fwd, 'load forwarding is off under mtt: ' .. table.concat(status, ' ', 2))

local cases = dofile(mtt.root .. '/tests/lua/jit_cases.lua')
local ran = 0
for _, name in ipairs(cases.names) do
  local ok, why = cases[name]()
  if ok ~= nil then
    ran = ran + 1
    check(ok, name .. ': ' .. why)
  else
    print(name .. ': not run here: ' .. why)
  end
end
check(ran >= 2, 'at least the two data-free cases ran')

-- the same cases in plain luajit (defaults: load forwarding on), for the record
local p = io.popen(string.format("cd '%s' && luajit tests/lua/jit_cases.lua 2>&1", mtt.root))
local out = p:read('*a')
p:close()
print('plain luajit, default settings (WRONG = this LuaJIT still needs the setting):')
io.write((out:gsub('[^\n]+', '  %0')))
checker.done()

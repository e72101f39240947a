-- jit_cases.lua: Lua code that Debian 12's LuaJIT JIT miscompiles with load forwarding on
-- (upstream LuaJIT issues 980 and 994, fixed there in 2023; see tools/mtt/main.c). Used by
-- test_jit_safety.lua in-process (under mtt's settings), and run alone with plain luajit
-- (`luajit tests/lua/jit_cases.lua`) to show whether this LuaJIT still needs the setting:
-- it prints one line per case, "<name> ok" or "<name> WRONG (...)".
local M = {}

-- A loop-carried load from tables made by alternating constructors (upstream 994's follow-up):
-- slot[1] read at i = 60 comes from the {true} made at i = 59.
function M.alternating_constructors()
  local r
  local slot = {}
  for i = 1, 60 do
    r = slot[1]
    slot = i % 2 ~= 0 and { true } or { false }
  end
  return r == true, 'slot[1] = ' .. tostring(r) .. ', expected true'
end

-- Loads through a constructor's values inside nested loops (upstream 980): must not crash and
-- must read nil.
function M.nested_constructor_loads()
  local y
  for _ = 1, 30 do
    local a = { { 1, false, 3 } }
    local b = { 1, 2, 3 }
    for i = 1, 2 do
      local c = a[i] or {}
      for _, k in ipairs(b) do y = c[k] end
    end
  end
  return y == nil, 'y = ' .. tostring(y) .. ', expected nil'
end

-- What the task builder met (tools/tasks/freedict.lua): words only one language has, counted
-- with `ipairs({'English', 'French', 'Spanish'})` inside a hot loop, on the FreeDict word lists.
-- The same count runs compiled and then in the interpreter; they must agree. nil when the
-- dictionaries (dict-freedict-eng-fra, -spa) are not installed.
local function freedict_words()
  local words = { English = {}, French = {}, Spanish = {} }
  local digit, B64 = {}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  for i = 1, 64 do digit[B64:sub(i, i)] = i - 1 end
  local function b64(s)
    local n = 0
    for ch in s:gmatch('.') do n = n * 64 + digit[ch] end
    return n
  end
  for _, pair in ipairs({ { 'eng-fra', 'French' }, { 'eng-spa', 'Spanish' } }) do
    local fi = io.open('/usr/share/dictd/freedict-' .. pair[1] .. '.index', 'rb')
    if not fi then return nil end
    local index = fi:read('*a')
    fi:close()
    for head, off in index:gmatch('([^\t\n]+)\t([^\t\n]+)\t[^\t\n]+') do
      if head:match('^[a-z]+$') then
        words.English[head] = (words.English[head] or 0) + 1
        -- a stand-in for the translations: the headword's reverse, spelled per language
        words[pair[2]][head:reverse() .. pair[2]:sub(1, 1):lower() .. (b64(off) % 7)] = true
        if b64(off) % 3 == 0 then words[pair[2]][head] = true end
      end
    end
  end
  return words
end

local function count_unique(words, lang)
  local keys = {}
  for k in pairs(words[lang]) do keys[#keys + 1] = k end
  table.sort(keys)
  local c = 0
  for _, w in ipairs(keys) do
    local n = 0
    for _, other in ipairs({ 'English', 'French', 'Spanish' }) do if words[other][w] then n = n + 1 end end
    if n == 1 then c = c + 1 end
  end
  return c
end

function M.constructor_in_hot_loop()
  local words = freedict_words()
  if not words then return nil, 'the FreeDict dictionaries are not installed' end
  local compiled = {}
  for i, lang in ipairs({ 'English', 'French', 'Spanish' }) do compiled[i] = count_unique(words, lang) end
  jit.off(count_unique)
  jit.flush()
  local interpreted = {}
  for i, lang in ipairs({ 'English', 'French', 'Spanish' }) do interpreted[i] = count_unique(words, lang) end
  jit.on(count_unique)
  local same = compiled[1] == interpreted[1] and compiled[2] == interpreted[2] and compiled[3] == interpreted[3]
  return same, string.format('compiled %s vs interpreted %s', table.concat(compiled, ' '),
    table.concat(interpreted, ' '))
end

M.names = { 'alternating_constructors', 'nested_constructor_loads', 'constructor_in_hot_loop' }

if arg and arg[0] and arg[0]:match('jit_cases%.lua$') then -- run alone: report on this LuaJIT as it is
  print(jit.version, jit.status())
  for _, name in ipairs(M.names) do
    local ok, why = M[name]()
    print(name, ok == nil and ('not run: ' .. why) or ok and 'ok' or ('WRONG (' .. why .. ')'))
  end
end
return M

-- lib.lua: shared helpers of the task-collection builder (tools/tasks/build_tasks.lua): a seeded
-- PRNG, file readers, an ordered JSON writer and the checks every task must pass.
-- Plain LuaJIT (bit library) so that the builder needs no mtt module.
local bit = require('bit')

local M = {}

function M.fail(msg)
  io.stderr:write('build_tasks: ' .. msg .. '\n')
  os.exit(1)
end

-- ---- randomness: xorshift32 seeded from a string, so that one task's draws never depend on
-- what the other tasks drew (tasks can be added or reordered without changing the others) ----
local function fnv1a(s)
  local h = 2166136261
  for i = 1, #s do
    h = bit.bxor(h, s:byte(i))
    h = (h * 16777619) % 4294967296 -- exact in doubles: h < 2^32, factor < 2^25
  end
  return h
end
M.hash = fnv1a

local Rng = {}
Rng.__index = Rng

function M.rng(seed_string)
  local s = fnv1a('mtt-tasks:' .. seed_string)
  if s == 0 then s = 2463534242 end
  local r = setmetatable({ s = bit.tobit(s) }, Rng)
  for _ = 1, 8 do r:next() end -- let the first draws mix
  return r
end

-- next(): a uniform integer in [0, 2^32)
function Rng:next()
  local x = self.s
  x = bit.bxor(x, bit.lshift(x, 13))
  x = bit.bxor(x, bit.rshift(x, 17))
  x = bit.bxor(x, bit.lshift(x, 5))
  self.s = x
  return x % 4294967296
end

-- int(a, b): uniform in [a, b] (int(n) = [1, n]); the modulo bias is below 2^-20 for our ranges
function Rng:int(a, b)
  if not b then a, b = 1, a end
  return a + self:next() % (b - a + 1)
end

function Rng:pick(list) return list[self:int(#list)] end

-- shuffle(list): a new list, Fisher-Yates
function Rng:shuffle(list)
  local t = {}
  for i = 1, #list do t[i] = list[i] end
  for i = #t, 2, -1 do
    local j = self:int(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

-- sample(list, n): n distinct elements (all of them, shuffled, when n >= #list)
function Rng:sample(list, n)
  local t = self:shuffle(list)
  for i = #t, n + 1, -1 do t[i] = nil end
  return t
end

-- ---- files ----
function M.read_file(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end

function M.shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- need(path, package): the text of a file a Debian package installs; .gz/.dz files are inflated
-- with gzip (an essential package)
function M.need(path, package)
  local s
  if path:match('%.gz$') or path:match('%.dz$') then
    local f = io.open(path, 'rb')
    if f then
      f:close()
      local p = io.popen('gzip -dc ' .. M.shell_quote(path) .. ' 2>/dev/null', 'r')
      s = p:read('*a')
      p:close()
    end
  else
    s = M.read_file(path)
  end
  if not s or #s == 0 then
    M.fail(string.format('%s is missing: install the Debian package %s (./build.sh deps)', path, package))
  end
  return s
end

function M.lines(text)
  local t = {}
  for line in (text .. '\n'):gmatch('([^\n]*)\n') do t[#t + 1] = (line:gsub('\r$', '')) end
  if t[#t] == '' then t[#t] = nil end
  return t
end

function M.trim(s) return (s:gsub('^%s+', ''):gsub('%s+$', '')) end

function M.split(s, sep)
  local t, i = {}, 1
  while true do
    local j = s:find(sep, i, true)
    if not j then t[#t + 1] = s:sub(i); return t end
    t[#t + 1] = s:sub(i, j - 1)
    i = j + #sep
  end
end

function M.sorted_keys(t)
  local k = {}
  for key in pairs(t) do k[#k + 1] = key end
  table.sort(k)
  return k
end

-- adder(tasks, fixed, defaults): a family's add(t): sets every field of fixed on the task spec
-- t, each field of defaults that t leaves nil, and appends t to tasks (specs only read these
-- fields, so tasks may share the default tables)
function M.adder(tasks, fixed, defaults)
  return function(t)
    for k, v in pairs(fixed) do t[k] = v end
    for k, v in pairs(defaults) do
      if t[k] == nil then t[k] = v end
    end
    tasks[#tasks + 1] = t
  end
end

-- valid_utf8(s): true when s is well-formed UTF-8 without control characters (inputs and
-- outputs are single lines)
function M.valid_utf8(s)
  if s:find('[%z\1-\31\127]') then return false end
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or (c >= 0xC2 and c <= 0xDF) and 2 or (c >= 0xE0 and c <= 0xEF) and 3
      or (c >= 0xF0 and c <= 0xF4) and 4 or nil
    if not len or i + len - 1 > n then return false end
    for k = i + 1, i + len - 1 do
      local d = s:byte(k)
      if d < 0x80 or d > 0xBF then return false end
    end
    i = i + len
  end
  return true
end

-- ---- JSON: a writer with a fixed key order (Lua tables have none), so that two builds give the
-- same bytes; strings keep their UTF-8, only '"', '\' and control characters are escaped ----
local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\t'] = '\\t', ['\r'] = '\\r' }
function M.json_string(s)
  return '"' .. s:gsub('[%z\1-\31"\\]', function(c)
    return escapes[c] or string.format('\\u%04x', c:byte())
  end) .. '"'
end

local function json_value(v)
  if type(v) == 'string' then return M.json_string(v) end
  if type(v) == 'number' then return string.format('%d', v) end
  local parts = {}
  if v.__keys then -- an object with ordered keys
    for _, k in ipairs(v.__keys) do parts[#parts + 1] = M.json_string(k) .. ': ' .. json_value(v[k]) end
    return '{' .. table.concat(parts, ', ') .. '}'
  end
  for i = 1, #v do parts[i] = json_value(v[i]) end
  return '[' .. table.concat(parts, ', ') .. ']'
end

function M.object(keys, values)
  values.__keys = keys
  return values
end

-- json_document(keys, values): one top-level object, one key a line; arrays of objects get one
-- element a line (readable diffs, a few MB for the whole collection)
function M.json_document(keys, values)
  local out = { '{\n' }
  for i, k in ipairs(keys) do
    local v = values[k]
    out[#out + 1] = '    ' .. M.json_string(k) .. ': '
    if type(v) == 'table' and type(v[1]) == 'table' then
      out[#out + 1] = '[\n'
      for j, e in ipairs(v) do
        out[#out + 1] = '        ' .. json_value(e) .. (j < #v and ',\n' or '\n')
      end
      out[#out + 1] = '    ]'
    else
      out[#out + 1] = json_value(v)
    end
    out[#out + 1] = i < #keys and ',\n' or '\n'
  end
  out[#out + 1] = '}\n'
  return table.concat(out)
end

-- ---- sha256 (for the MANIFEST), plain Lua over the bit library ----
local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
function M.sha256(msg)
  local band, bor, bxor, bnot, ror, rshift = bit.band, bit.bor, bit.bxor, bit.bnot, bit.ror, bit.rshift
  local tobit = bit.tobit
  local len = #msg
  local bits = len * 8
  local hi, lo = math.floor(bits / 4294967296), bits % 4294967296
  msg = msg .. '\128' .. string.rep('\0', (55 - len) % 64) .. string.char(
    math.floor(hi / 16777216) % 256, math.floor(hi / 65536) % 256, math.floor(hi / 256) % 256, hi % 256,
    math.floor(lo / 16777216) % 256, math.floor(lo / 65536) % 256, math.floor(lo / 256) % 256, lo % 256)
  local H = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
  for i = 1, 8 do H[i] = tobit(H[i]) end
  local w = {}
  for chunk = 1, #msg, 64 do
    for j = 0, 15 do
      local a, b, c, d = msg:byte(chunk + 4 * j, chunk + 4 * j + 3)
      w[j] = bor(bit.lshift(a, 24), bit.lshift(b, 16), bit.lshift(c, 8), d)
    end
    for j = 16, 63 do
      local x, y = w[j - 15], w[j - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
      w[j] = tobit(w[j - 16] + s0 + w[j - 7] + s1)
    end
    local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
    for j = 0, 63 do
      local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = tobit(h + S1 + ch + K[j + 1] + w[j])
      local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, b), band(a, c), band(b, c))
      local t2 = tobit(S0 + maj)
      h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
    end
    H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
    H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
  end
  local out = {}
  for i = 1, 8 do out[i] = bit.tohex(H[i]) end
  return table.concat(out)
end

return M

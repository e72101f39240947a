-- mtt.eval.rng: the small deterministic generator the evaluations draw demonstrations and
-- fine-tuning examples with. Seeded from a key (seed, task name, instance id or n) by FNV-1a,
-- so a draw depends on its key only: never on the order tasks run in, on the thread count, or
-- on what was drawn before. xorshift32 is enough for picking a few items from a list, and
-- 32-bit integer arithmetic is exact in LuaJIT's `bit` library on every machine.
local bit = require 'bit'
local bxor, lshift, rshift, tobit = bit.bxor, bit.lshift, bit.rshift, bit.tobit

local R = {}
R.__index = R

-- 32-bit product of two 32-bit values (their low 32 bits), exact with doubles: split b in
-- 16-bit halves so that no partial product reaches 2^53.
local function mul32(a, b)
  local lo, hi = b % 65536, math.floor(b / 65536) % 65536
  return tobit((a * lo + tobit(a * hi % 65536 * 65536)) % 4294967296)
end

-- FNV-1a over the parts joined by '\0' (numbers as %.17g, so 1 and 1.0 agree).
function R.key(...)
  local h = tobit(2166136261)
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    local s = type(v) == 'number' and string.format('%.17g', v) or tostring(v)
    if i > 1 then h = mul32(bxor(h, 0) % 4294967296, 16777619) end
    for j = 1, #s do
      h = mul32(bxor(h, s:byte(j)) % 4294967296, 16777619)
    end
  end
  return h % 4294967296
end

-- rng.new(...): a generator seeded by key(...).
function R.new(...)
  local s = tobit(R.key(...))
  if s == 0 then s = tobit(0x9e3779b9) end
  local self = setmetatable({ s = s }, R)
  for _ = 1, 4 do self:next() end -- spread a small key's bits before the first draw
  return self
end

-- next 32-bit state (xorshift32: 13, 17, 5)
function R:next()
  local x = self.s
  x = bxor(x, lshift(x, 13))
  x = bxor(x, rshift(x, 17))
  x = bxor(x, lshift(x, 5))
  self.s = x
  return x % 4294967296
end

-- random() in [0, 1); random(n): an integer in [1, n].
function R:random(n)
  local u = self:next() / 4294967296
  if n then return math.floor(u * n) + 1 end
  return u
end

-- A permutation of 1..n (Fisher-Yates).
function R:permutation(n)
  local p = {}
  for i = 1, n do p[i] = i end
  for i = n, 2, -1 do
    local j = self:random(i)
    p[i], p[j] = p[j], p[i]
  end
  return p
end

-- Up to k items of list, in drawn order, leaving out those for which skip(item) is true.
function R:sample(list, k, skip)
  local out = {}
  if k <= 0 then return out end
  local p = self:permutation(#list)
  for _, i in ipairs(p) do
    local item = list[i]
    if not (skip and skip(item)) then
      out[#out + 1] = item
      if #out == k then break end
    end
  end
  return out
end

return R

-- mtt.tasks.rng: the small, portable random numbers the task layer needs (splits, demonstration
-- draws, generated instances): a 32-bit FNV-1a hash for seeds and mulberry32 for streams.
-- Pure Lua with exact double arithmetic, so the same seed gives the same numbers on every
-- machine and LuaJIT build, independent of the core's generator and of load order.
local bit = require 'bit'
local bxor, rshift, bor = bit.bxor, bit.rshift, bit.bor

local R = {}
local TWO32 = 2 ^ 32

local function u32(x) return x % TWO32 end

-- a * b mod 2^32 for a, b in [0, 2^32): split b in 16-bit halves so that no product exceeds 2^53.
local function imul(a, b)
  local lo, hi = b % 65536, math.floor(b / 65536)
  return (a * lo + ((a * hi) % 65536) * 65536) % TWO32
end
R.imul = imul

-- FNV-1a (32 bits) of a string: the seed of a task's split is R.hash(seed .. ':' .. name).
function R.hash(s)
  local h = 2166136261
  for i = 1, #s do
    h = imul(u32(bxor(h, s:byte(i))), 16777619)
  end
  return h
end

local Rng = { __name = 'mtt.tasks.Rng' }
Rng.__index = Rng

-- R.new(seed): a stream; seed is any integer or string (strings are hashed).
function R.new(seed)
  if type(seed) == 'string' then seed = R.hash(seed) end
  assert(type(seed) == 'number' and seed == math.floor(seed), 'mtt.tasks.rng: seed must be an integer or a string')
  return setmetatable({ state = u32(seed) }, Rng)
end

-- The next 32-bit value (mulberry32).
function Rng:u32()
  self.state = u32(self.state + 0x6D2B79F5)
  local z = self.state
  z = imul(u32(bxor(z, rshift(z, 15))), u32(bor(z, 1)))
  z = u32(bxor(z, u32(z + imul(u32(bxor(z, rshift(z, 7))), u32(bor(z, 61))))))
  return u32(bxor(z, rshift(z, 14)))
end

-- As math.random: () -> [0, 1); (m) -> integer in [1, m]; (m, n) -> integer in [m, n].
function Rng:random(m, n)
  local u = self:u32() / TWO32
  if m == nil then return u end
  if n == nil then m, n = 1, m end
  if n < m then error(string.format('rng:random: empty interval [%s, %s]', tostring(m), tostring(n)), 2) end
  return m + math.floor(u * (n - m + 1))
end

function Rng:choice(list)
  if #list == 0 then error('rng:choice: empty list', 2) end
  return list[self:random(#list)]
end

-- Fisher-Yates in place; returns list.
function Rng:shuffle(list)
  for i = #list, 2, -1 do
    local j = self:random(i)
    list[i], list[j] = list[j], list[i]
  end
  return list
end

-- k distinct elements of list (k <= #list), in draw order; list is not changed.
function Rng:sample(list, k)
  local n = #list
  if k > n then error(string.format('rng:sample: k = %d > %d elements', k, n), 2) end
  local idx, out = {}, {}
  for i = 1, n do idx[i] = i end
  for i = 1, k do
    local j = self:random(i, n)
    idx[i], idx[j] = idx[j], idx[i]
    out[i] = list[idx[i]]
  end
  return out
end

-- A permutation of 1..n.
function Rng:permutation(n)
  local p = {}
  for i = 1, n do p[i] = i end
  return self:shuffle(p)
end

return R

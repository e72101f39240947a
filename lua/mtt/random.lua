-- mtt.random: seeds and generators. The core's generator is counter based (Philox), so its
-- whole state is (seed, offset): a draw of n numbers advances offset by n.
local ffi = require 'ffi'
local C = require('mtt.ffi').C
local U = require 'mtt.util'

local R = {}

local Generator = { __name = 'mtt.Generator' }
Generator.__index = Generator

local function check_seed(s, fname)
  if not U.is_int(s) or s < 0 then
    U.raise(string.format('%s: seed must be an integer >= 0, got %s', fname, tostring(s)))
  end
  return s
end

-- mtt.Generator(seed): an independent stream, passed to ops as opts.generator.
function R.Generator(seed)
  local g = ffi.new('mtt_generator')
  g.seed = check_seed(seed or 0, 'mtt.Generator')
  g.offset = 0
  return setmetatable({ g = g }, Generator)
end

function Generator:manual_seed(seed)
  self.g.seed = check_seed(seed, 'Generator:manual_seed')
  self.g.offset = 0
  return self
end

function Generator:seed() return tonumber(self.g.seed) end

-- {seed =, offset =}: enough to resume the stream exactly (checkpoints).
function Generator:get_state()
  return { seed = tonumber(self.g.seed), offset = tonumber(self.g.offset) }
end

function Generator:set_state(st)
  if type(st) ~= 'table' or not U.is_int(st.seed) or not U.is_int(st.offset) then
    U.raise('Generator:set_state: expected {seed = integer, offset = integer}')
  end
  self.g.seed, self.g.offset = st.seed, st.offset
  return self
end

function Generator:__tostring()
  return string.format('mtt.Generator(seed=%d, offset=%d)', tonumber(self.g.seed), tonumber(self.g.offset))
end

-- The generator ops use when none is given (a view of the core's, not a copy).
function R.default_generator()
  return setmetatable({ g = C.mtt_default_generator() }, Generator)
end

function R.manual_seed(seed)
  C.mtt_manual_seed(check_seed(seed, 'mtt.manual_seed'))
end

-- opts.generator -> mtt_generator* or nil (the default generator).
function R.gen_ptr(gen)
  if gen == nil then return nil end
  return gen.g
end

R.is_generator = function(v) return getmetatable(v) == Generator end

return R

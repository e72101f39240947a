-- mtt.nn.module: the base of every layer and model (mtt.nn.Module).
--
-- A module is a plain Lua table with a class as metatable. It holds its parameters (leaf
-- tensors that require grad) and child modules under names, in the order they were
-- registered; that order and the dotted names (transformer.h.0.attn.c_attn.weight) are what
-- parameters(), named_parameters() and state_dict() give, so they match Hugging Face's for
-- the models built here. forward() composes core ops; autograd does the backward.
--
--   local Lin = module.class('MyLayer')           -- a new module class
--   function Lin.new(n) local self = module.new(Lin); self:register_parameter('w', t) ... end
--   function Lin:forward(x) ... end               -- layer(x) calls forward
--
-- One tensor may be registered under several names (tied weights, e.g. GPT-2's lm_head and
-- wte): parameters() and named_parameters() give it once, under its first name, as torch
-- does; state_dict() gives every name unless asked for {tied = false}.
local ffi = require 'ffi'
local U = require 'mtt.util'
local options = require 'mtt.options'
local tensor = require 'mtt.tensor'
local autograd = require 'mtt.autograd'

local T, is_tensor = tensor.methods, tensor.is_tensor
local raise = U.raise

local M = {}

local Module = { __name = 'Module' }
Module.__index = Module
M.Module = Module

local function call(self, ...) return self:forward(...) end
local function show(self) return self.__name .. '()' end

-- class(name[, parent]): a module class. Metamethods are copied onto each class, since a
-- metatable's __index does not make __call or __tostring inherit.
function M.class(name, parent)
  parent = parent or Module
  local cls = { __name = name, __call = call, __tostring = parent.__tostring or show }
  cls.__index = cls
  return setmetatable(cls, { __index = parent, __call = function(c, ...) return c.new(...) end })
end

-- A fresh instance of cls, in training mode, with nothing registered yet.
function M.new(cls)
  return setmetatable({ _pnames = {}, _cnames = {}, _children = {}, training = true }, cls)
end

function Module.new() raise('nn.Module: an abstract class; make one with mtt.nn.module.class(name)') end
setmetatable(Module, { __call = function() return Module.new() end })

function Module:forward()
  raise(string.format('%s: forward is not implemented', self.__name))
end

-- ---- registration ----
function Module:register_parameter(name, t)
  if type(name) ~= 'string' or name == '' or name:find('.', 1, true) then
    raise(string.format("%s:register_parameter: invalid name '%s'", self.__name, tostring(name)))
  end
  if not is_tensor(t) then
    raise(string.format("%s:register_parameter: '%s' must be a tensor, got %s", self.__name, name, type(t)))
  end
  local known = false
  for _, n in ipairs(self._pnames) do known = known or n == name end
  if not known then self._pnames[#self._pnames + 1] = name end
  self[name] = t
  return t
end

-- add_module(name, m): m reachable as self[key] (key defaults to name; ModuleList uses 1..n
-- for children named '0'..'n-1').
function Module:add_module(name, m, key)
  if type(name) ~= 'string' or name == '' or name:find('.', 1, true) then
    raise(string.format("%s:add_module: invalid name '%s'", self.__name, tostring(name)))
  end
  if not M.is_module(m) then
    raise(string.format("%s:add_module: '%s' must be a module, got %s", self.__name, name, type(m)))
  end
  if self._children[name] == nil then self._cnames[#self._cnames + 1] = name end
  self._children[name] = m
  self[key or name] = m
  return m
end

function M.is_module(v)
  if type(v) ~= 'table' then return false end
  local mt = getmetatable(v)
  while type(mt) == 'table' do
    if mt == Module then return true end
    local up = getmetatable(mt)
    mt = up and up.__index
  end
  return false
end

-- ---- walking the tree ----
-- fn(prefix, module) for self and every descendant, depth first in registration order.
function Module:apply_named(fn, prefix)
  prefix = prefix or ''
  fn(prefix, self)
  for _, name in ipairs(self._cnames) do
    self._children[name]:apply_named(fn, prefix == '' and name or prefix .. '.' .. name)
  end
  return self
end

-- {{name, tensor}, ...} of every registered name, aliases included.
local function all_named(self)
  local list = {}
  self:apply_named(function(prefix, m)
    for _, n in ipairs(m._pnames) do
      list[#list + 1] = { prefix == '' and n or prefix .. '.' .. n, m[n] }
    end
  end)
  return list
end

-- Lists of names and tensors, each tensor once (under its first name).
function Module:named_parameters()
  local out, seen = {}, {}
  for _, e in ipairs(all_named(self)) do
    local key = M.key(e[2])
    if not seen[key] then
      seen[key] = true
      out[#out + 1] = e
    end
  end
  return out
end

function Module:parameters()
  local out = {}
  for i, e in ipairs(self:named_parameters()) do out[i] = e[2] end
  return out
end

-- A table key for a tensor's identity: two Lua references to one C tensor give the same key.
function M.key(t)
  return tonumber(ffi.cast('uintptr_t', ffi.cast('void *', t)))
end

-- num_parameters([{exclude_embeddings = false}]): element count, tied tensors counted once.
-- exclude_embeddings leaves out the tensors of Embedding modules (as Hugging Face does).
function Module:num_parameters(opts)
  local o = options.check(self.__name .. ':num_parameters', opts, 'exclude_embeddings:boolean')
  local skip = {}
  if o.exclude_embeddings then
    self:apply_named(function(_, m)
      if m.__name == 'Embedding' then
        for _, n in ipairs(m._pnames) do skip[M.key(m[n])] = true end
      end
    end)
  end
  local n = 0
  for _, e in ipairs(self:named_parameters()) do
    if not skip[M.key(e[2])] then n = n + T.numel(e[2]) end
  end
  return n
end

-- ---- state ----
-- state_dict([{tied = true}]): name -> tensor (the parameters themselves, not copies). With
-- tied = false an alias of an earlier name is left out (a checkpoint stores it once).
function Module:state_dict(opts)
  local o = options.check(self.__name .. ':state_dict', opts, 'tied:boolean')
  local sd = {}
  local list = o.tied == false and self:named_parameters() or all_named(self)
  for _, e in ipairs(list) do sd[e[1]] = e[2] end
  return sd
end

-- Names of the state dict in module order (state_dict() is a hash table).
function Module:state_dict_names(opts)
  local o = options.check(self.__name .. ':state_dict_names', opts, 'tied:boolean')
  local names = {}
  for i, e in ipairs(o.tied == false and self:named_parameters() or all_named(self)) do names[i] = e[1] end
  return names
end

-- A hook for classes whose checkpoints come with other names or extra buffers (the GPT
-- classes accept Hugging Face files as they are): returns a name -> tensor table.
function Module.normalize_state_dict(_, sd) return sd end

local function name_list(l, max)
  max = max or 8
  local shown = {}
  for i = 1, math.min(#l, max) do shown[i] = l[i] end
  local s = table.concat(shown, ', ')
  if #l > max then s = s .. string.format(', ... (%d in all)', #l) end
  return s
end

-- load_state_dict(sd[, {strict = true}]): copies each tensor of sd into the parameter of the
-- same name (in place, so optimizers holding the parameters keep working; dtype converted).
-- A tied tensor needs only one of its names. Strict: missing or unexpected names are an error
-- that lists them; a shape mismatch is always an error. Returns missing, unexpected (sorted
-- lists of names).
function Module:load_state_dict(sd, opts)
  local fname = self.__name .. ':load_state_dict'
  if type(sd) ~= 'table' then raise(string.format('%s: expected a table name -> tensor, got %s', fname, type(sd))) end
  local o = options.check(fname, opts, 'strict:boolean')
  local strict = o.strict ~= false
  sd = self:normalize_state_dict(sd)
  local named = all_named(self)
  local known, loaded = {}, {}
  for _, e in ipairs(named) do known[e[1]] = e[2] end
  local unexpected = {}
  for k, v in pairs(sd) do
    if type(k) ~= 'string' then raise(string.format('%s: names must be strings, got a %s', fname, type(k))) end
    if not is_tensor(v) then raise(string.format("%s: '%s' is a %s, expected a tensor", fname, k, type(v))) end
    if known[k] == nil then unexpected[#unexpected + 1] = k end
  end
  table.sort(unexpected)
  for _, e in ipairs(named) do
    local name, p = e[1], e[2]
    local src = sd[name]
    if src ~= nil then
      local ps, ss = T.shape(p), T.shape(src)
      if U.shape_str(ps) ~= U.shape_str(ss) then
        raise(string.format("%s: '%s' has shape %s in the state dict, the model expects %s", fname, name,
          U.shape_str(ss), U.shape_str(ps)))
      end
    end
  end
  local missing = {}
  for _, e in ipairs(named) do
    local name, p = e[1], e[2]
    local key = M.key(p)
    if sd[name] ~= nil and not loaded[key] then
      loaded[key] = true
      autograd.no_grad(function() T.copy_(p, sd[name]) end)
    end
  end
  for _, e in ipairs(named) do
    if not loaded[M.key(e[2])] then missing[#missing + 1] = e[1] end
  end
  if strict and (#missing > 0 or #unexpected > 0) then
    local parts = {}
    if #missing > 0 then parts[#parts + 1] = string.format('missing %d: %s', #missing, name_list(missing)) end
    if #unexpected > 0 then
      parts[#parts + 1] = string.format('unexpected %d: %s', #unexpected, name_list(unexpected))
    end
    raise(string.format('%s: state dict does not match the model (%s); pass {strict = false} to load the rest',
      fname, table.concat(parts, '; ')))
  end
  return missing, unexpected
end

-- ---- modes and placement ----
function Module:train(mode)
  if mode == nil then mode = true end
  if type(mode) ~= 'boolean' then raise(self.__name .. ':train: mode must be a boolean, got ' .. type(mode)) end
  self:apply_named(function(_, m) m.training = mode end)
  return self
end

function Module:eval() return self:train(false) end

-- to(device | dtype | {device =, dtype =}): moves or converts every parameter (tensor:to's
-- arguments); tied tensors stay tied. A parameter already there is kept as it is.
function Module:to(what)
  local done = {}
  self:apply_named(function(_, m)
    for _, n in ipairs(m._pnames) do
      local p = m[n]
      local key = M.key(p)
      if not done[key] then
        local q = T.to(p, what)
        if M.key(q) ~= key then
          q = T.requires_grad(T.detach(q), p.needs_grad ~= 0)
        end
        done[key] = q
      end
      m[n] = done[key]
    end
  end)
  return self
end

-- zero_grad(): drops every parameter's .grad.
function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do T.set_grad(p, nil) end
  return self
end

-- summary(): one line per module that holds parameters (name, type, shapes, count), then the
-- total. Returned as a string.
function Module:summary()
  local rows, first_name = {}, {}
  local width = 4
  self:apply_named(function(prefix, m)
    if #m._pnames == 0 then return end
    local shapes, count, tied = {}, 0, {}
    for _, n in ipairs(m._pnames) do
      local p = m[n]
      local key, full = M.key(p), prefix == '' and n or prefix .. '.' .. n
      shapes[#shapes + 1] = U.tshape(p)
      if first_name[key] then
        tied[#tied + 1] = 'tied to ' .. first_name[key]
      else
        first_name[key] = full
        count = count + T.numel(p)
      end
    end
    local name = prefix == '' and '(model)' or prefix
    width = math.max(width, #name)
    rows[#rows + 1] = { name, m.__name, table.concat(shapes, ' '), count, table.concat(tied, ', ') }
  end)
  local out = { string.format('%-' .. width .. 's  %-12s %-24s %12s', 'name', 'type', 'shape', 'params') }
  for _, r in ipairs(rows) do
    out[#out + 1] = string.format('%-' .. width .. 's  %-12s %-24s %12d%s', r[1], r[2], r[3], r[4],
      r[5] ~= '' and ('  (' .. r[5] .. ')') or '')
  end
  out[#out + 1] = string.format('%s: %d parameters', self.__name, self:num_parameters())
  return table.concat(out, '\n')
end

Module.__tostring = function(self)
  return string.format('%s(%d parameters)', self.__name, self:num_parameters())
end

-- ---- ModuleList: children named '0'..'n-1' (as torch), reached as list[1]..list[n] ----
local ModuleList = M.class('ModuleList')
M.ModuleList = ModuleList

function ModuleList.new(mods)
  local self = M.new(ModuleList)
  self.n = 0
  for _, m in ipairs(mods or {}) do self:append(m) end
  return self
end

function ModuleList:append(m)
  self.n = self.n + 1
  self:add_module(tostring(self.n - 1), m, self.n)
  return self
end

function ModuleList.forward()
  raise('ModuleList: has no forward; call its members (list[1], ...)')
end

return M

-- mtt.optim: SGD and AdamW over lists of parameters, each step one fused call into the core.
-- Hyperparameters are plain fields (opt.lr = ... for schedules); per-parameter state tensors
-- are made on the first step a parameter has a gradient.
local ffi = require 'ffi'
local C = require('mtt.ffi').C
local U = require 'mtt.util'
local options = require 'mtt.options'
local tensor = require 'mtt.tensor'

local T, wrap, is_tensor = tensor.methods, tensor.wrap, tensor.is_tensor
local raise, check_status = U.raise, U.check_status

local optim = {}

local function check_params(fname, params)
  if type(params) ~= 'table' or is_tensor(params) then
    raise(fname .. ': params must be a table of tensors, got ' ..
      (is_tensor(params) and 'a tensor' or type(params)))
  end
  if #params == 0 then raise(fname .. ': params is empty') end
  local list = {}
  for i = 1, #params do
    if not is_tensor(params[i]) then
      raise(string.format('%s: params[%d] is a %s, expected a tensor', fname, i, type(params[i])))
    end
    list[i] = params[i]
  end
  return list
end

local function ptrs(list)
  local a = ffi.new('mtt_tensor *[?]', #list > 0 and #list or 1)
  for i = 1, #list do a[i - 1] = list[i] end
  return a
end

local function zeros_like(p)
  return wrap(C.mtt_zeros(p.ndim, p.dims, p.dtype_id, p.device_id))
end

local function nonneg(fname, name, v)
  if v ~= v or v < 0 then raise(string.format('%s: %s must be >= 0, got %s', fname, name, tostring(v))) end
  return v
end

-- ---- shared by both optimizers ----
local Optimizer = {}
Optimizer.__index = Optimizer

function Optimizer:zero_grad()
  for _, p in ipairs(self.params) do check_status(C.mtt_set_grad(p, nil)) end
end

-- Indices of the parameters that have a gradient this step.
function Optimizer:_with_grad()
  local idx = {}
  for i, p in ipairs(self.params) do
    if p.grad_tensor ~= nil then idx[#idx + 1] = i end
  end
  return idx
end

-- {type, step, hyper = {...}, state = {[i] = {name = tensor clone}}}: a plain table.
function Optimizer:state_dict()
  local hyper = {}
  for _, k in ipairs(self._hyper) do
    local v = self[k]
    hyper[k] = type(v) == 'table' and { unpack(v) } or v
  end
  local state = {}
  for i, s in pairs(self.state) do
    state[i] = {}
    for name, t in pairs(s) do state[i][name] = T.clone(t) end
  end
  return { type = self._name, step = self.step_count, hyper = hyper, state = state }
end

function Optimizer:load_state_dict(sd)
  local fname = self._name .. '.load_state_dict'
  if type(sd) ~= 'table' then raise(fname .. ': expected a table, got ' .. type(sd)) end
  if sd.type ~= self._name then
    raise(string.format("%s: state dict is for '%s', not %s", fname, tostring(sd.type), self._name))
  end
  if not U.is_int(sd.step) or sd.step < 0 then raise(fname .. ': step must be an integer >= 0') end
  if type(sd.hyper) ~= 'table' then raise(fname .. ': hyper must be a table') end
  local known = {}
  for _, k in ipairs(self._hyper) do known[k] = true end
  for k, v in pairs(sd.hyper) do
    if not known[k] then
      raise(string.format("%s: unknown hyperparameter '%s' (accepted: %s)", fname, tostring(k),
        table.concat(self._hyper, ', ')))
    end
    if type(v) ~= type(self[k]) then
      raise(string.format("%s: hyperparameter '%s' must be a %s, got %s", fname, k, type(self[k]), type(v)))
    end
  end
  local state = {}
  for i, s in pairs(type(sd.state) == 'table' and sd.state or {}) do
    local p = self.params[i]
    if not p then
      raise(string.format('%s: state for parameter %s, but the optimizer has %d parameters', fname, tostring(i),
        #self.params))
    end
    state[i] = {}
    for _, name in ipairs(self._state_names) do
      local t = s[name]
      if not is_tensor(t) then
        raise(string.format('%s: state[%d].%s is missing or not a tensor', fname, i, name))
      end
      if U.tshape(t) ~= U.tshape(p) or t.dtype_id ~= p.dtype_id then
        raise(string.format('%s: state[%d].%s is %s %s, parameter %d is %s %s', fname, i, name,
          U.tshape(t), U.dtype_names[t.dtype_id], i, U.tshape(p), U.dtype_names[p.dtype_id]))
      end
      -- a checkpoint's moments are read on the cpu; the parameter may live on another device
      state[i][name] = t.device_id == p.device_id and T.clone(t) or T.to(t, p.device)
    end
  end
  if sd.state ~= nil and type(sd.state) ~= 'table' then raise(fname .. ': state must be a table') end
  for k, v in pairs(sd.hyper) do self[k] = type(v) == 'table' and { unpack(v) } or v end
  self.state, self.step_count = state, sd.step
end

local function new(cls, name, params, hyper, state_names)
  local self = setmetatable({ _name = name, params = params, state = {}, step_count = 0,
    _hyper = hyper, _state_names = state_names }, cls)
  return self
end

-- ---- SGD ----
local SGD = setmetatable({}, { __index = Optimizer })
SGD.__index = SGD
SGD.__tostring = function(s)
  return string.format('SGD(lr=%g, momentum=%g, %d params)', s.lr, s.momentum, #s.params)
end

-- SGD(params, {lr =, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false})
function optim.SGD(params, opts)
  local o = options.check('SGD', opts,
    'lr:number momentum:number dampening:number weight_decay:number nesterov:boolean')
  if o.lr == nil then raise("SGD: option 'lr' is required") end
  local self = new(SGD, 'SGD', check_params('SGD', params),
    { 'lr', 'momentum', 'dampening', 'weight_decay', 'nesterov' }, { 'momentum_buffer' })
  self.lr = nonneg('SGD', 'lr', o.lr)
  self.momentum = nonneg('SGD', 'momentum', o.momentum or 0)
  self.dampening = o.dampening or 0
  self.weight_decay = nonneg('SGD', 'weight_decay', o.weight_decay or 0)
  self.nesterov = o.nesterov or false
  if self.nesterov and (self.momentum <= 0 or self.dampening ~= 0) then
    raise('SGD: nesterov needs momentum > 0 and dampening = 0')
  end
  return self
end

function SGD:step()
  local idx = self:_with_grad()
  if #idx == 0 then return end
  self.step_count = self.step_count + 1
  local nest = self.nesterov and 1 or 0
  if self.momentum == 0 then
    local ps = {}
    for j, i in ipairs(idx) do ps[j] = self.params[i] end
    check_status(C.mtt_sgd_step(#ps, ptrs(ps), nil, self.lr, 0, self.dampening, self.weight_decay, nest, 0))
    return
  end
  -- parameters whose momentum buffer is new take the first-step rule (buffer = gradient)
  local groups = { [0] = { {}, {} }, [1] = { {}, {} } }
  for _, i in ipairs(idx) do
    local p, s = self.params[i], self.state[i]
    local first = 0
    if not s then
      s = { momentum_buffer = zeros_like(p) }
      self.state[i] = s
      first = 1
    end
    local g = groups[first]
    g[1][#g[1] + 1], g[2][#g[2] + 1] = p, s.momentum_buffer
  end
  for first = 0, 1 do
    local ps, bs = groups[first][1], groups[first][2]
    if #ps > 0 then
      check_status(C.mtt_sgd_step(#ps, ptrs(ps), ptrs(bs), self.lr, self.momentum, self.dampening,
        self.weight_decay, nest, first))
    end
  end
end

-- ---- AdamW ----
local AdamW = setmetatable({}, { __index = Optimizer })
AdamW.__index = AdamW
AdamW.__tostring = function(s)
  return string.format('AdamW(lr=%g, weight_decay=%g, %d params)', s.lr, s.weight_decay, #s.params)
end

-- AdamW(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0.01})
function optim.AdamW(params, opts)
  local o = options.check('AdamW', opts, 'lr:number betas:table eps:number weight_decay:number')
  local self = new(AdamW, 'AdamW', check_params('AdamW', params),
    { 'lr', 'betas', 'eps', 'weight_decay' }, { 'exp_avg', 'exp_avg_sq' })
  self.lr = nonneg('AdamW', 'lr', o.lr or 1e-3)
  local b = o.betas or { 0.9, 0.999 }
  for i = 1, 2 do
    if type(b[i]) ~= 'number' or b[i] < 0 or b[i] >= 1 then
      raise(string.format('AdamW: betas[%d] must be a number in [0, 1), got %s', i, tostring(b[i])))
    end
  end
  self.betas = { b[1], b[2] }
  self.eps = nonneg('AdamW', 'eps', o.eps or 1e-8)
  self.weight_decay = nonneg('AdamW', 'weight_decay', o.weight_decay or 0.01)
  return self
end

function AdamW:step()
  local idx = self:_with_grad()
  if #idx == 0 then return end
  self.step_count = self.step_count + 1
  local ps, ms, vs = {}, {}, {}
  for j, i in ipairs(idx) do
    local p = self.params[i]
    local s = self.state[i]
    if not s then
      s = { exp_avg = zeros_like(p), exp_avg_sq = zeros_like(p) }
      self.state[i] = s
    end
    ps[j], ms[j], vs[j] = p, s.exp_avg, s.exp_avg_sq
  end
  check_status(C.mtt_adamw_step(#ps, ptrs(ps), ptrs(ms), ptrs(vs), self.step_count, self.lr,
    self.betas[1], self.betas[2], self.eps, self.weight_decay))
end

-- ---- utilities ----
-- clip_grad_norm_(params, max_norm): scales the gradients so that their global L2 norm is at
-- most max_norm; returns the norm before clipping.
local function clip_grad_norm_(params, max_norm)
  local list = check_params('clip_grad_norm_', params)
  if type(max_norm) ~= 'number' or max_norm ~= max_norm or max_norm <= 0 then
    raise('clip_grad_norm_: max_norm must be a number > 0, got ' .. tostring(max_norm))
  end
  local total = ffi.new('double[1]')
  check_status(C.mtt_clip_grad_norm(#list, ptrs(list), max_norm, total))
  return total[0]
end

optim.utils = { clip_grad_norm_ = clip_grad_norm_ }
return optim

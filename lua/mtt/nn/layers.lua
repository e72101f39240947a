-- mtt.nn.layers: the basic layers, with torch's names, shapes and default initializations:
-- Linear (weight [out, in]), Conv1D (Hugging Face GPT-2's: weight [in, out]), Embedding,
-- LayerNorm, Dropout. Options: generator (for the initial values), init = false (leave the
-- values uninitialized, for a checkpoint about to be loaded).
local U = require 'mtt.util'
local options = require 'mtt.options'
local tensor = require 'mtt.tensor'
local creation = require 'mtt.creation'
local F = require 'mtt.functional'
local module = require 'mtt.nn.module'

local T = tensor.methods
local raise = U.raise

local L = {}

local function check_size(fname, what, v)
  if not U.is_int(v) or v < 1 then
    raise(string.format('%s: %s must be an integer >= 1, got %s', fname, what, tostring(v)))
  end
  return v
end

-- A leaf that requires grad: uninitialized when init is false, else filled by fill(shape).
local function param(shape, o, fill)
  local t
  if o.init == false then t = creation.empty(shape) else t = fill(shape) end
  return T.requires_grad(t, true)
end

-- Draws as the torch initializers do, from o.generator (the default generator if nil).
function L.normal(shape, std, gen) return T.mul(creation.randn(shape, { generator = gen }), std) end
function L.uniform(shape, bound, gen)
  return T.add(T.mul(creation.rand(shape, { generator = gen }), 2 * bound), -bound)
end
local function zeros(shape) return creation.zeros(shape) end
local function ones(shape) return creation.ones(shape) end

-- ---- Linear(in_features, out_features[, {bias = true, generator =, init =, std =}]) ----
-- y = x W^T + b; torch's init: U(-1/sqrt(in), 1/sqrt(in)) for W and b; with std (as
-- Hugging Face initializes its models): W ~ N(0, std), b = 0.
local Linear = module.class('Linear')
L.Linear = Linear

function Linear.new(in_features, out_features, opts)
  local o = options.check('nn.Linear', opts, 'bias:boolean generator:generator init:boolean std:number')
  check_size('nn.Linear', 'in_features', in_features)
  check_size('nn.Linear', 'out_features', out_features)
  local self = module.new(Linear)
  self.in_features, self.out_features = in_features, out_features
  local bound = 1 / math.sqrt(in_features)
  local function u(shape) return L.uniform(shape, bound, o.generator) end
  local function n(shape) return L.normal(shape, o.std, o.generator) end
  self:register_parameter('weight', param({ out_features, in_features }, o, o.std and n or u))
  if o.bias ~= false then self:register_parameter('bias', param({ out_features }, o, o.std and zeros or u)) end
  return self
end

function Linear:forward(x) return F.linear(x, self.weight, self.bias) end

-- ---- Conv1D(nf, nx[, opts]): Hugging Face's GPT-2 "Conv1D", a linear layer with the weight
-- stored [nx (in), nf (out)]: y = x W + b. Init as GPT-2: W ~ N(0, 0.02), b = 0. ----
local Conv1D = module.class('Conv1D')
L.Conv1D = Conv1D

function Conv1D.new(nf, nx, opts)
  local o = options.check('nn.Conv1D', opts, 'generator:generator init:boolean std:number')
  check_size('nn.Conv1D', 'nf', nf)
  check_size('nn.Conv1D', 'nx', nx)
  local self = module.new(Conv1D)
  self.nf, self.nx = nf, nx
  local function normal(s) return L.normal(s, o.std or 0.02, o.generator) end
  self:register_parameter('weight', param({ nx, nf }, o, normal))
  self:register_parameter('bias', param({ nf }, o, zeros))
  return self
end

function Conv1D:forward(x) return T.add(T.matmul(x, self.weight), self.bias) end

-- ---- Embedding(num_embeddings, embedding_dim[, opts]): rows of weight for i32 ids
-- (0-based). torch's init: N(0, 1). ----
local Embedding = module.class('Embedding')
L.Embedding = Embedding

function Embedding.new(num_embeddings, embedding_dim, opts)
  local o = options.check('nn.Embedding', opts, 'generator:generator init:boolean std:number')
  check_size('nn.Embedding', 'num_embeddings', num_embeddings)
  check_size('nn.Embedding', 'embedding_dim', embedding_dim)
  local self = module.new(Embedding)
  self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
  self:register_parameter('weight',
    param({ num_embeddings, embedding_dim }, o, function(s) return L.normal(s, o.std or 1, o.generator) end))
  return self
end

function Embedding:forward(ids) return F.embedding(ids, self.weight) end

-- ---- LayerNorm(n[, {eps = 1e-5, elementwise_affine = true, bias = true}]) over the last dim ----
local LayerNorm = module.class('LayerNorm')
L.LayerNorm = LayerNorm

function LayerNorm.new(n, opts)
  local o = options.check('nn.LayerNorm', opts, 'eps:number elementwise_affine:boolean bias:boolean init:boolean')
  check_size('nn.LayerNorm', 'normalized_shape', n)
  local self = module.new(LayerNorm)
  self.normalized_shape, self.eps = n, o.eps or 1e-5
  if o.elementwise_affine ~= false then
    self:register_parameter('weight', param({ n }, o, ones))
    if o.bias ~= false then self:register_parameter('bias', param({ n }, o, zeros)) end
  end
  return self
end

function LayerNorm:forward(x) return F.layer_norm(x, self.weight, self.bias, self.eps) end

-- ---- Dropout(p[, {generator =}]): identity in eval mode. A model hands the same generator
-- to all its dropouts, so a seed makes its training reproducible (and resumable: the
-- generator's state goes into checkpoints). ----
local Dropout = module.class('Dropout')
L.Dropout = Dropout

function Dropout.new(p, opts)
  local o = options.check('nn.Dropout', opts, 'generator:generator')
  if type(p) ~= 'number' or p ~= p or p < 0 or p > 1 then
    raise('nn.Dropout: p must be a probability in [0, 1], got ' .. tostring(p))
  end
  local self = module.new(Dropout)
  self.p, self.generator = p, o.generator
  return self
end

function Dropout:forward(x)
  if not self.training or self.p == 0 then return x end
  return F.dropout(x, self.p, { generator = self.generator })
end

return L

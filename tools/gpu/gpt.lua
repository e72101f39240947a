-- tools/gpu/gpt.lua: a GPT-2 (the Hugging Face GPT2 layout: Conv1D weights [in, out], tied
-- lm_head, GELU-tanh, pre-LayerNorm) written straight on mtt.F, for the GPU checks and the
-- benchmark. It is a local stand-in, not the library's model (lua/mtt/nn): the device checks
-- must not depend on another part being finished; once mtt.nn.GPT moves to a device, the
-- checks can use it instead. tools/gpu/bench_gpt_torch.py builds the same model in PyTorch.
local mtt = require 'mtt'
local F = mtt.F

local M = {}
M.__index = M

-- cfg: vocab_size, n_positions, n_embd, n_layer, n_head, device, seed
function M.new(cfg)
  local self = setmetatable({ cfg = cfg, params = {}, names = {} }, M)
  local g = mtt.Generator(cfg.seed or 0)
  local C, L = cfg.n_embd, cfg.n_layer
  local function add(name, t)
    t = t:to(cfg.device or 'cpu'):requires_grad()
    self.params[#self.params + 1] = t
    self.names[#self.names + 1] = name
    return t
  end
  -- drawn on the cpu, then moved: the same initial weights on every device
  local function normal(std, ...) return add('', mtt.randn({ ... }, { generator = g }) * std) end
  local function zeros(...) return add('', mtt.zeros(...)) end
  local function ones(...) return add('', mtt.ones(...)) end
  local proj_std = 0.02 / math.sqrt(2 * L)
  self.wte = normal(0.02, cfg.vocab_size, C)
  self.wpe = normal(0.01, cfg.n_positions, C)
  self.h = {}
  for l = 1, L do
    self.h[l] = {
      ln_1_w = ones(C), ln_1_b = zeros(C),
      c_attn_w = normal(0.02, C, 3 * C), c_attn_b = zeros(3 * C),
      c_proj_w = normal(proj_std, C, C), c_proj_b = zeros(C),
      ln_2_w = ones(C), ln_2_b = zeros(C),
      c_fc_w = normal(0.02, C, 4 * C), c_fc_b = zeros(4 * C),
      mlp_proj_w = normal(proj_std, 4 * C, C), mlp_proj_b = zeros(C),
    }
  end
  self.ln_f_w, self.ln_f_b = ones(C), zeros(C)
  return self
end

function M:num_parameters()
  local n = 0
  for _, p in ipairs(self.params) do n = n + p:numel() end
  return n
end

-- idx, targets: i32 [B, T] on the model's device; returns the mean loss (0-d)
function M:loss(idx, targets)
  local cfg = self.cfg
  local B, T = idx:size(1), idx:size(2)
  local C, H = cfg.n_embd, cfg.n_head
  local D = C / H
  local pos = self.wpe:narrow(1, 1, T)
  local x = F.embedding(idx, self.wte) + pos
  for l = 1, cfg.n_layer do
    local p = self.h[l]
    local h = F.layer_norm(x, p.ln_1_w, p.ln_1_b, 1e-5)
    local qkv = h:matmul(p.c_attn_w) + p.c_attn_b
    local function head(i) return qkv:narrow(3, i * C + 1, C):view(B, T, H, D):transpose(2, 3) end
    local y = F.attention(head(0), head(1), head(2), { causal = true })
    y = y:transpose(2, 3):contiguous():view(B, T, C)
    x = x + (y:matmul(p.c_proj_w) + p.c_proj_b)
    h = F.layer_norm(x, p.ln_2_w, p.ln_2_b, 1e-5)
    h = (h:matmul(p.c_fc_w) + p.c_fc_b):gelu()
    x = x + (h:matmul(p.mlp_proj_w) + p.mlp_proj_b)
  end
  x = F.layer_norm(x, self.ln_f_w, self.ln_f_b, 1e-5)
  local logits = x:matmul(self.wte:t())
  return F.cross_entropy(logits, targets)
end

-- Training FLOPs per token (the usual count: 6 per parameter of the matrix products, the
-- lm_head included, plus causal attention's 6 * T * C per layer; embeddings and norms not).
function M:flops_per_token(T)
  local cfg = self.cfg
  local C, L, V = cfg.n_embd, cfg.n_layer, cfg.vocab_size
  local matmul_params = L * (C * 3 * C + C * C + C * 4 * C + 4 * C * C) + V * C
  return 6 * matmul_params + 6 * L * T * C
end

return M

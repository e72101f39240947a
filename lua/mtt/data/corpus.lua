-- mtt.data.corpus: a tokenized text corpus cut into fixed-length blocks, for language-model
-- training.
--
--   local c = mtt.data.corpus{files = {'docs.tar.zst', 'web.jsonl.xz'}, tokenizer = tok,
--                             block_size = 256, seed = 1, val_fraction = 0.05}
--   local idx, targets = c:batch('train', 16)   -- i32 [16, 256] each; targets = idx shifted by 1
--   local st = c:state()  ...  c:set_state(st)  -- resume: the same batches follow
--
-- Documents: each member of an archive (or a plain/compressed file) is one document, or, with
-- separator = '\n\n' (say), each piece of it between separators (blank pieces are skipped);
-- JSONL members (*.jsonl, *.ndjson, or format = 'jsonl') hold one JSON object a line whose
-- `text_field` is a document. Files are read through libarchive as streams (mtt.io), in the
-- order given (a folder: its files, sorted, recursively); a JSONL member is split line by line
-- as it streams, a text member is read whole (one member must fit in memory).
--
-- Tokens: every document is encoded and followed by the end-of-text id, so the model sees
-- document boundaries; the stream lives in one i32 tensor (corpus.tokens), never a Lua table.
--
-- Blocks: the stream is cut into n_blocks = floor(n_tokens / (T + 1)) disjoint blocks of T + 1
-- tokens (idx = the first T, targets = the last T); the < T + 1 tokens left at the end are
-- unused. The validation split is val_fraction of the blocks, evenly spread over the stream
-- (block floor((j + 1/2) n_blocks / n_val) for j = 0..n_val-1) so that it samples every part
-- of the corpus; it does not depend on the seed, so runs with different seeds are scored on the
-- same text. Blocks never share a token, so no validation target is ever a training input.
--
-- Order: each split is visited epoch by epoch, in a fresh permutation per epoch drawn from
-- (seed, split, epoch) with splitmix64 + Fisher-Yates, so the whole order is a function of the
-- seed and the cursor {epoch, pos} is all a resumed run needs (corpus:state()).
local ffi = require 'ffi'
local bit = require 'bit'
local mtt_io = require 'mtt.io'
local U = require 'mtt.util'
local options = require 'mtt.options'
local creation = require 'mtt.creation'
local C = require('mtt.ffi').C

local raise = U.raise

local M = {}
local Corpus = {}
Corpus.__index = Corpus

local SPLITS = { train = 1, val = 2 }
local STATE_FORMAT = 'mtt.corpus/1'

local function i32ptr(t) return ffi.cast('int32_t *', C.mtt_data_ptr(t)) end

-- ---- a growing i32 buffer (an mtt tensor, so that its size is not bounded by Lua's heap) ----

local Buffer = {}
Buffer.__index = Buffer

local function new_buffer(cap)
  local t = creation.empty(cap, { dtype = 'i32' })
  return setmetatable({ t = t, p = i32ptr(t), n = 0, cap = cap }, Buffer)
end

function Buffer:reserve(extra)
  if self.n + extra <= self.cap then return end
  local cap = math.max(self.cap * 2, self.n + extra)
  local t = creation.empty(cap, { dtype = 'i32' })
  local p = i32ptr(t)
  ffi.copy(p, self.p, self.n * 4)
  self.t, self.p, self.cap = t, p, cap
end

function Buffer:push(id)
  if self.n == self.cap then self:reserve(1) end
  self.p[self.n] = id
  self.n = self.n + 1
end

-- The first n elements as their own tensor (a copy when much capacity would be wasted).
function Buffer:tensor()
  local v = self.t:narrow(1, 1, math.max(self.n, 0))
  if self.cap > self.n + self.n / 8 + 1024 then v = v:clone() end
  return v
end

-- ---- reading documents ----

local function expand_files(list, out)
  for _, path in ipairs(list) do
    if type(path) ~= 'string' then raise('corpus: files must be paths (strings), got a ' .. type(path)) end
    local st, err = mtt_io.stat(path)
    if not st then raise('corpus: ' .. err) end
    if st.is_dir then
      local inner = {}
      for _, name in ipairs(mtt_io.listdir(path)) do inner[#inner + 1] = path .. '/' .. name end
      expand_files(inner, out)
    else
      out[#out + 1] = path
    end
  end
  return out
end

local function member_format(format, name)
  if format ~= 'auto' then return format end
  if name:match('%.jsonl$') or name:match('%.ndjson$') then return 'jsonl' end
  return 'text'
end

-- Calls emit(text) for every document of path.
local function each_document(path, o, emit)
  local json = require('cjson').new()
  local r = mtt_io.open_archive(path)
  while true do
    local name = r:next()
    if not name then break end
    if member_format(o.format, name) == 'jsonl' then
      -- lines of this member only: read it through a line splitter over r
      local lineno = 0
      local function line(s)
        lineno = lineno + 1
        if s:byte(-1) == 13 then s = s:sub(1, -2) end
        if s:find('^%s*$') then return end
        local ok, rec = pcall(json.decode, s)
        local where = string.format('%s (%s) line %d', path, name, lineno)
        if not ok then raise('corpus: ' .. where .. ': invalid JSON: ' .. tostring(rec)) end
        local text = type(rec) == 'table' and rec[o.text_field]
        if type(text) ~= 'string' then
          raise(string.format("corpus: %s: no string field '%s'", where, o.text_field))
        end
        emit(text)
      end
      mtt_io.each_line(r, line)
    elseif o.separator then
      local text, pos, sep = r:read_all(), 1, o.separator
      while pos <= #text do
        local a, b = text:find(sep, pos, true)
        local piece = text:sub(pos, (a or #text + 1) - 1)
        if piece:find('%S') then emit(piece) end
        if not a then break end
        pos = b + 1
      end
    else
      emit(r:read_all())
    end
  end
  r:close()
end

-- Appends the tokens of text and the end-of-text id to buf.
local function encoder(tok, eot)
  local into = tok.encode_into
  return function(buf, text)
    if #text == 0 then return end
    if into then
      -- byte-level BPE never makes more tokens than bytes
      buf:reserve(#text + 1)
      local n = into(tok, text, buf.p + buf.n, buf.cap - buf.n)
      if type(n) ~= 'number' or n < 0 or n > buf.cap - buf.n then
        raise('corpus: tokenizer:encode_into returned ' .. tostring(n))
      end
      buf.n = buf.n + n
    else
      local ids = tok:encode(text)
      buf:reserve(#ids + 1)
      for i = 1, #ids do buf.p[buf.n + i - 1] = ids[i] end
      buf.n = buf.n + #ids
    end
    buf:push(eot)
  end
end

-- ---- the token cache (a safetensors file keyed by the inputs) ----

local function cache_key(files, o, tok, eot)
  local parts = { 'mtt.corpus.cache/1', o.format, o.text_field, o.separator or '', tostring(eot), tostring(tok.vocab_size) }
  -- The tokenizer's ids for a probe text stand in for its identity (merges, specials).
  local probe = 'The quick brown fox, 1234 -- jumps!\n\tUnicode: caf\195\169 \226\130\172 <|endoftext|>'
  local ids = tok:encode(probe)
  parts[#parts + 1] = table.concat(ids, ',')
  for _, path in ipairs(files) do
    local st = mtt_io.stat(path)
    parts[#parts + 1] = string.format('%s|%d|%d', path, st.size, st.mtime_ns)
  end
  for _, text in ipairs(o.texts or {}) do parts[#parts + 1] = 'text|' .. #text .. '|' .. text:sub(1, 64) end
  return table.concat(parts, '\n')
end

local function cached_tokens(path, key)
  if not mtt_io.stat(path) then return nil end
  local ok, f = pcall(mtt_io.open_safetensors, path)
  if not ok then return nil end
  local md = f:metadata()
  local t
  if md and md['mtt.corpus.key'] == key then t = f:tensor('tokens') end
  f:close()
  return t
end

-- ---- building ----

-- A 32-bit fingerprint of the token stream, so that a state is only restored on the same corpus.
local function checksum(p, n)
  local a, b = 1, 0
  for i = 0, n - 1 do
    a = bit.band(a + p[i] + 1, 0xffff)
    b = bit.band(b + a, 0xffff)
  end
  return bit.tobit(bit.bor(bit.lshift(b, 16), a))
end

local SPEC = 'files:table texts:table tokens:tensor tokenizer:table|cdata|userdata block_size:number seed:number '
  .. 'val_fraction:number format:string text_field:string separator:string eot:number cache:string'

function M.new(opts)
  local fname = 'mtt.data.corpus'
  if type(opts) ~= 'table' then raise(fname .. ': expected a table of options') end
  local o = options.check(fname, opts, SPEC)
  local T = o.block_size
  if not U.is_int(T) or T < 1 then raise(fname .. ': block_size must be an integer >= 1') end
  local seed = o.seed or 0
  if not U.is_int(seed) or seed < 0 then raise(fname .. ': seed must be an integer >= 0') end
  local f = o.val_fraction or 0.1
  if f < 0 or f >= 1 then raise(fname .. ': val_fraction must be in [0, 1), got ' .. f) end
  local format = o.format or 'auto'
  if format ~= 'auto' and format ~= 'text' and format ~= 'jsonl' then
    raise(fname .. ": format must be 'auto', 'text' or 'jsonl', got '" .. format .. "'")
  end
  if o.separator == '' then raise(fname .. ': separator must not be empty') end
  local so = { format = format, text_field = o.text_field or 'text', texts = o.texts, separator = o.separator }

  local self = setmetatable({ block_size = T, seed = seed, val_fraction = f, files = {} }, Corpus)
  local tokens
  if o.tokens then
    if o.files or o.texts or o.cache then raise(fname .. ': tokens excludes files, texts and cache') end
    if o.tokens.dtype ~= 'i32' or o.tokens.ndim ~= 1 then raise(fname .. ': tokens must be a 1-d i32 tensor') end
    tokens = o.tokens:contiguous()
    self.eot_id = o.eot
  else
    if not o.files and not o.texts then raise(fname .. ': give files (or texts, or tokens)') end
    local tok = o.tokenizer
    if tok == nil then raise(fname .. ': a tokenizer is needed to read files or texts') end
    local eot = o.eot or tok.eot_id
    if not U.is_int(eot) then raise(fname .. ': the tokenizer has no eot_id (<|endoftext|>); pass eot = id') end
    self.eot_id, self.vocab_size = eot, tok.vocab_size
    local files = expand_files(o.files or {}, {})
    self.files = files
    local key = o.cache and cache_key(files, so, tok, eot)
    tokens = o.cache and cached_tokens(o.cache, key)
    if tokens then
      self.from_cache = true
    else
      local buf = new_buffer(2 ^ 20)
      local add = encoder(tok, eot)
      local n_docs = 0
      local function emit(text)
        n_docs = n_docs + 1
        add(buf, text)
      end
      for _, path in ipairs(files) do each_document(path, so, emit) end
      for i, text in ipairs(o.texts or {}) do
        if type(text) ~= 'string' then raise(string.format('%s: texts[%d] is a %s', fname, i, type(text))) end
        emit(text)
      end
      tokens = buf:tensor()
      self.n_documents = n_docs
      if o.cache then mtt_io.save_safetensors(o.cache, { tokens = tokens }, { ['mtt.corpus.key'] = key }) end
    end
  end
  self.tokens = tokens
  self.n_tokens = tokens:numel()
  self.checksum = checksum(i32ptr(tokens), self.n_tokens)

  -- blocks and splits
  local nb = math.floor(self.n_tokens / (T + 1))
  local n_val = f > 0 and math.max(1, math.floor(nb * f)) or 0
  if nb - n_val < 1 then
    raise(string.format('%s: %d tokens make %d blocks of block_size + 1 = %d tokens; %s', fname, self.n_tokens, nb,
      T + 1, n_val > 0 and 'need at least 2 (one for training, one for validation)' or 'need at least 1'))
  end
  self.n_blocks = nb
  local is_val = {}
  local val = creation.empty(math.max(n_val, 1), { dtype = 'i32' })
  local train = creation.empty(nb - n_val, { dtype = 'i32' })
  local vp, tp = i32ptr(val), i32ptr(train)
  for j = 0, n_val - 1 do
    local b = math.floor((j + 0.5) * nb / n_val)
    vp[j] = b
    is_val[b] = true
  end
  local k = 0
  for b = 0, nb - 1 do
    if not is_val[b] then tp[k] = b; k = k + 1 end
  end
  self.split_blocks = { train = train, val = n_val > 0 and val:narrow(1, 1, n_val) or nil }
  self.split_size = { train = nb - n_val, val = n_val }
  self.cursor = { train = { epoch = 0, pos = 0 }, val = { epoch = 0, pos = 0 } }
  self.perm = {}
  return self
end

-- ---- order ----

local function splitmix(s) -- s: uint64_t[1]; returns the next 64-bit output
  s[0] = s[0] + 0x9E3779B97F4A7C15ULL
  local z = s[0]
  z = bit.bxor(z, bit.rshift(z, 30)) * 0xBF58476D1CE4E5B9ULL
  z = bit.bxor(z, bit.rshift(z, 27)) * 0x94D049BB133111EBULL
  return bit.bxor(z, bit.rshift(z, 31))
end

-- The visiting order of a split in an epoch: a permutation of 0..n-1 (i32 tensor).
local function permutation(n, seed, split, epoch)
  local t = creation.empty(math.max(n, 1), { dtype = 'i32' })
  local p = i32ptr(t)
  for i = 0, n - 1 do p[i] = i end
  local s = ffi.new('uint64_t[1]')
  s[0] = ffi.cast('uint64_t', seed)
  s[0] = bit.bxor(splitmix(s), ffi.cast('uint64_t', split) * 0xD1B54A32D192ED03ULL,
    ffi.cast('uint64_t', epoch) * 0x8CB92BA72F3D8DD7ULL)
  for i = n - 1, 1, -1 do
    -- j uniform in [0, i]: the high 32 bits times (i + 1), exactly, in 64-bit integers
    local j = tonumber(bit.rshift(bit.rshift(splitmix(s), 32) * (i + 1), 32))
    p[i], p[j] = p[j], p[i]
  end
  return t, p
end

local function check_split(self, split, fname)
  if not SPLITS[split] then raise(string.format("%s: split must be 'train' or 'val', got %s", fname, tostring(split))) end
  if self.split_size[split] == 0 then raise(fname .. ": the 'val' split is empty (val_fraction = 0)") end
end

local function order(self, split, epoch)
  local cached = self.perm[split]
  if cached and cached.epoch == epoch then return cached.p end
  local t, p = permutation(self.split_size[split], self.seed, SPLITS[split], epoch)
  self.perm[split] = { epoch = epoch, t = t, p = p }
  return p
end

-- Copies block b (0-based) into row r of idx and targets.
local function fill_row(self, ip, tp, r, b)
  local T = self.block_size
  local src = i32ptr(self.tokens) + b * (T + 1)
  ffi.copy(ip + r * T, src, T * 4)
  ffi.copy(tp + r * T, src + 1, T * 4)
end

-- ---- batches ----

-- idx, targets: i32 [B, T]; the next B blocks of the split in this seed's order (epochs roll
-- over inside a batch when needed).
function Corpus:batch(split, B)
  check_split(self, split, 'corpus:batch')
  if not U.is_int(B) or B < 1 then raise('corpus:batch: batch size must be an integer >= 1, got ' .. tostring(B)) end
  local T = self.block_size
  local idx = creation.empty(B, T, { dtype = 'i32' })
  local targets = creation.empty(B, T, { dtype = 'i32' })
  local ip, tp = i32ptr(idx), i32ptr(targets)
  local cur, n = self.cursor[split], self.split_size[split]
  local blocks = i32ptr(self.split_blocks[split])
  for r = 0, B - 1 do
    if cur.pos >= n then cur.epoch, cur.pos = cur.epoch + 1, 0 end
    local p = order(self, split, cur.epoch)
    fill_row(self, ip, tp, r, blocks[p[cur.pos]])
    cur.pos = cur.pos + 1
  end
  return idx, targets
end

-- for idx, targets in corpus:iter(split, B): one pass over the split in stream order (the last
-- batch may be smaller); the cursors are left alone. For full evaluations.
function Corpus:iter(split, B)
  check_split(self, split, 'corpus:iter')
  if not U.is_int(B) or B < 1 then raise('corpus:iter: batch size must be an integer >= 1') end
  local n, at, T = self.split_size[split], 0, self.block_size
  local blocks = self.split_blocks[split]
  return function()
    if at >= n then return nil end
    local m = math.min(B, n - at)
    local idx = creation.empty(m, T, { dtype = 'i32' })
    local targets = creation.empty(m, T, { dtype = 'i32' })
    local ip, tp, bp = i32ptr(idx), i32ptr(targets), i32ptr(blocks)
    for r = 0, m - 1 do fill_row(self, ip, tp, r, bp[at + r]) end
    at = at + m
    return idx, targets
  end
end

function Corpus:num_blocks(split)
  if split == nil then return self.n_blocks end
  if not SPLITS[split] then raise("corpus:num_blocks: split must be 'train' or 'val'") end
  return self.split_size[split]
end

-- The block indices (0-based, into the stream) of a split, as a Lua list (tests, inspection).
function Corpus:blocks(split)
  check_split(self, split, 'corpus:blocks')
  local p, out = i32ptr(self.split_blocks[split]), {}
  for i = 0, self.split_size[split] - 1 do out[i + 1] = p[i] end
  return out
end

-- Back to the start of epoch 0 (of one split, or both).
function Corpus:reset(split)
  if split ~= nil and not SPLITS[split] then raise("corpus:reset: split must be 'train' or 'val'") end
  for s in pairs(SPLITS) do
    if split == nil or split == s then self.cursor[s] = { epoch = 0, pos = 0 } end
  end
end

-- ---- resume ----

-- A plain table (JSON-safe): the cursors plus what identifies the corpus.
function Corpus:state()
  return {
    format = STATE_FORMAT, block_size = self.block_size, n_blocks = self.n_blocks, n_tokens = self.n_tokens,
    seed = self.seed, n_val = self.split_size.val, checksum = self.checksum,
    train = { epoch = self.cursor.train.epoch, pos = self.cursor.train.pos },
    val = { epoch = self.cursor.val.epoch, pos = self.cursor.val.pos },
  }
end

function Corpus:set_state(st)
  local fname = 'corpus:set_state'
  if type(st) ~= 'table' or st.format ~= STATE_FORMAT then raise(fname .. ': not a corpus state (from corpus:state())') end
  for _, k in ipairs({ 'block_size', 'n_blocks', 'n_tokens', 'seed', 'n_val', 'checksum' }) do
    local mine = k == 'n_val' and self.split_size.val or self[k]
    if st[k] ~= mine then
      raise(string.format('%s: the state is from another corpus or set-up (%s = %s there, %s here)', fname, k,
        tostring(st[k]), tostring(mine)))
    end
  end
  for s in pairs(SPLITS) do
    local c = st[s]
    if type(c) ~= 'table' or not U.is_int(c.epoch) or not U.is_int(c.pos) or c.epoch < 0 or c.pos < 0
      or c.pos > self.split_size[s] then
      raise(fname .. ': bad cursor for ' .. s)
    end
    self.cursor[s] = { epoch = c.epoch, pos = c.pos }
  end
  return self
end

-- ---- statistics ----

-- Entropy (bits per token) of the unigram distribution of the split's target tokens: the
-- loss / ln 2 of the best model that ignores context, a floor any real model must beat.
function Corpus:unigram_bits_per_token(split)
  check_split(self, split, 'corpus:unigram_bits_per_token')
  local T, n = self.block_size, self.split_size[split]
  local tp, bp = i32ptr(self.tokens), i32ptr(self.split_blocks[split])
  local V = self.vocab_size or 0
  for i = 0, self.n_tokens - 1 do if tp[i] >= V then V = tp[i] + 1 end end
  local counts = ffi.new('double[?]', V)
  for k = 0, n - 1 do
    local base = bp[k] * (T + 1)
    for i = base + 1, base + T do counts[tp[i]] = counts[tp[i]] + 1 end
  end
  local total, h = n * T, 0
  for v = 0, V - 1 do
    local c = counts[v]
    if c > 0 then h = h - c * math.log(c / total) end
  end
  return h / total / math.log(2)
end

function Corpus:__tostring()
  return string.format('mtt.data.corpus(%d tokens, %d blocks of %d+1: %d train, %d val, seed %d)', self.n_tokens,
    self.n_blocks, self.block_size, self.split_size.train, self.split_size.val, self.seed)
end

return M

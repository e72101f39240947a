-- mtt.tokenizer: byte-level BPE as GPT-2's, over the C core (core/tokenizer*.c).
--
--   local tok = mtt.tokenizer.gpt2('encoder.json', 'vocab.bpe')      -- GPT-2's own files
--   local tok = mtt.tokenizer.load('tokenizer.json')                  -- Hugging Face format
--   local tok = mtt.tokenizer.train{files = {'a.txt'}, vocab_size = 8192,
--                                   special_tokens = {'<|sep|>'}}
--   tok:encode('Hello world')  --> {15496, 995}      (0-based ids, a Lua array)
--   tok:decode({15496, 995})   --> 'Hello world'     (any bytes round-trip, invalid UTF-8 too)
--   tok:save('tokenizer.json'); tok.vocab_size; tok.eot_id; tok:token_id('<|endoftext|>')
--   tok:encode_into(s, int32_ptr, capacity) --> count (for corpora: no Lua table)
--
-- Special tokens (<|endoftext|> and those given to train, or the added_tokens of a file) are
-- found whole in the text and encode to their ids; {split_special_tokens = true} treats them
-- as plain text instead (as Hugging Face's option of that name).
local ffi = require 'ffi'
local lib = require 'mtt.ffi'
local C = lib.C
local U = require 'mtt.util'
local options = require 'mtt.options'

local raise = U.raise
local M = {}

local Tokenizer = {}
local mt = { __name = 'mtt.Tokenizer' }
-- fields that exist but may be nil (an unknown name is an error, as for tensors)
local nil_fields = { eot_id = true }

mt.__index = function(self, key)
  local m = Tokenizer[key]
  if m ~= nil or nil_fields[key] then return m end
  local names = {}
  for k in pairs(Tokenizer) do names[#names + 1] = k end
  table.sort(names)
  raise(string.format("tokenizer: no field or method '%s' (fields: vocab_size, n_merges, eot_id, " ..
    "special_tokens; methods: %s)", tostring(key), table.concat(names, ', ')))
end

mt.__tostring = function(self)
  local specials = {}
  for s in pairs(self.special_tokens) do specials[#specials + 1] = s end
  table.sort(specials)
  return string.format('Tokenizer(byte-level BPE, vocab_size=%d, merges=%d, special=%s)', self.vocab_size,
    self.n_merges, table.concat(specials, ' '))
end

-- One growing scratch buffer for ids: Lua is single-threaded, and every call copies out.
local ids_buf, ids_cap = nil, 0
local function ids_buffer(n)
  if n > ids_cap then
    ids_cap = math.max(n, 2 * ids_cap, 4096)
    ids_buf = ffi.new('int32_t[?]', ids_cap)
  end
  return ids_buf
end

local function wrap(ptr)
  if ptr == nil then raise(U.last_error()) end
  ptr = ffi.gc(ptr, C.mtt_tokenizer_free)
  local self = { _c = ptr, vocab_size = C.mtt_tokenizer_vocab_size(ptr), n_merges = C.mtt_tokenizer_n_merges(ptr),
    special_tokens = {} }
  local len = ffi.new('size_t[1]')
  for id = 0, self.vocab_size - 1 do
    if C.mtt_tokenizer_is_special(ptr, id) ~= 0 then
      self.special_tokens[ffi.string(C.mtt_tokenizer_token_bytes(ptr, id, len), len[0])] = id
    end
  end
  self.eot_id = self.special_tokens['<|endoftext|>']
  return setmetatable(self, mt)
end

local function check_string(fname, s, what)
  if type(s) ~= 'string' then raise(string.format('%s: %s must be a string, got %s', fname, what or 'text', type(s))) end
end

-- ---- constructors ----

-- mtt.tokenizer.load(path): a Hugging Face tokenizer.json (byte-level BPE).
function M.load(path)
  check_string('mtt.tokenizer.load', path, 'path')
  path = require('mtt.sandbox').check_read(path, 'mtt.tokenizer.load')
  return wrap(C.mtt_tokenizer_load(path))
end

-- mtt.tokenizer.gpt2(encoder_json, vocab_bpe): GPT-2's encoder.json and vocab.bpe.
function M.gpt2(encoder_json, vocab_bpe)
  check_string('mtt.tokenizer.gpt2', encoder_json, 'encoder_json')
  check_string('mtt.tokenizer.gpt2', vocab_bpe, 'vocab_bpe')
  encoder_json = require('mtt.sandbox').check_read(encoder_json, 'mtt.tokenizer.gpt2')
  vocab_bpe = require('mtt.sandbox').check_read(vocab_bpe, 'mtt.tokenizer.gpt2')
  return wrap(C.mtt_tokenizer_load_gpt2(encoder_json, vocab_bpe))
end

local CHUNK = 4 * 1024 * 1024

-- Feeds a file in chunks cut after a newline, so that memory stays bounded on big files (a
-- piece never spans a cut, which differs from whole-file pre-tokenization only for runs of
-- spaces that straddle one).
local function feed_file(tr, path)
  local f, err = io.open(path, 'rb')
  if not f then raise('mtt.tokenizer.train: cannot open ' .. tostring(err)) end
  local carry = ''
  while true do
    local block = f:read(CHUNK)
    if not block then break end
    block = carry .. block
    local cut = block:match('^.*()\n')
    if cut then
      carry = block:sub(cut + 1)
      block = block:sub(1, cut)
    else
      carry, block = block, nil
    end
    if block and C.mtt_bpe_trainer_feed(tr, block, #block) ~= 0 then f:close(); raise(U.last_error()) end
  end
  f:close()
  if #carry > 0 and C.mtt_bpe_trainer_feed(tr, carry, #carry) ~= 0 then raise(U.last_error()) end
end

-- mtt.tokenizer.train{files = {...} and/or texts = {...}, vocab_size = n, special_tokens = {...},
-- min_frequency = 1}: learns merges until vocab_size tokens (256 bytes + merges + special
-- tokens, <|endoftext|> always among them), or until no pair occurs min_frequency times.
function M.train(opts)
  local fname = 'mtt.tokenizer.train'
  local o = options.check(fname, opts, 'files:table texts:table vocab_size:number special_tokens:table min_frequency:number')
  if not o.files and not o.texts then raise(fname .. ': give files = {...} or texts = {...}') end
  if not U.is_int(o.vocab_size) then raise(fname .. ': vocab_size (an integer) is required') end
  local min_frequency = o.min_frequency or 1
  if not U.is_int(min_frequency) or min_frequency < 1 then raise(fname .. ': min_frequency must be an integer >= 1') end
  local specials = o.special_tokens or {}
  local n = #specials
  local ptrs, lens = ffi.new('const char *[?]', n + 1), ffi.new('size_t[?]', n + 1)
  for i, s in ipairs(specials) do
    check_string(fname, s, 'special_tokens[' .. i .. ']')
    ptrs[i - 1], lens[i - 1] = s, #s
  end
  local tr = C.mtt_bpe_trainer_new(n, ptrs, lens)
  if tr == nil then raise(U.last_error()) end
  tr = ffi.gc(tr, C.mtt_bpe_trainer_free)
  for i, path in ipairs(o.files or {}) do
    check_string(fname, path, 'files[' .. i .. ']')
    feed_file(tr, path)
  end
  for i, text in ipairs(o.texts or {}) do
    check_string(fname, text, 'texts[' .. i .. ']')
    if C.mtt_bpe_trainer_feed(tr, text, #text) ~= 0 then raise(U.last_error()) end
  end
  local tok = wrap(C.mtt_bpe_trainer_finish(tr, o.vocab_size, min_frequency))
  C.mtt_bpe_trainer_free(ffi.gc(tr, nil))
  return tok
end

-- mtt.tokenizer.pretokenize(s): GPT-2's pre-tokenization alone, as a list of strings.
function M.pretokenize(s)
  check_string('mtt.tokenizer.pretokenize', s)
  local n = tonumber(C.mtt_tokenizer_pretokenize(s, #s, nil, 0))
  local ends = ffi.new('int64_t[?]', n + 1)
  C.mtt_tokenizer_pretokenize(s, #s, ends, n)
  local out, start = {}, 0
  for i = 0, n - 1 do
    local e = tonumber(ends[i])
    out[i + 1] = s:sub(start + 1, e)
    start = e
  end
  return out
end

M.unicode_version = ffi.string(C.mtt_tokenizer_unicode_version())

-- ---- methods ----

function Tokenizer:encode(s, opts)
  check_string('tokenizer:encode', s)
  local split = opts ~= nil and options.check('tokenizer:encode', opts, 'split_special_tokens:boolean').split_special_tokens
  local cap = #s + 1 -- at most one id per byte, plus a prefix space
  local buf = ids_buffer(cap)
  local n = tonumber(C.mtt_tokenizer_encode(self._c, s, #s, split and 1 or 0, buf, cap))
  if n < 0 then raise(U.last_error()) end
  local out = {}
  for i = 0, n - 1 do out[i + 1] = buf[i] end
  return out
end

-- tok:encode_into(s, ptr, capacity): writes the ids of s at ptr (an int32_t pointer) and returns
-- their count; an error if they need more than capacity (#s + 1 always suffices).
function Tokenizer:encode_into(s, ptr, capacity)
  check_string('tokenizer:encode_into', s)
  if type(ptr) ~= 'cdata' then raise('tokenizer:encode_into: ptr must be an int32_t pointer, got ' .. type(ptr)) end
  if not U.is_int(capacity) or capacity < 0 then
    raise('tokenizer:encode_into: capacity must be an integer >= 0, got ' .. tostring(capacity))
  end
  local n = tonumber(C.mtt_tokenizer_encode(self._c, s, #s, 0, ffi.cast('int32_t *', ptr), capacity))
  if n < 0 then raise(U.last_error()) end
  return n
end

local char_buf, char_cap = nil, 0

-- tok:decode(ids): ids is a Lua array of ids or a 1-D i32 tensor.
function Tokenizer:decode(ids)
  local n, p
  if type(ids) == 'table' then
    n = #ids
    p = ids_buffer(n)
    for i = 1, n do
      local id = ids[i]
      if not U.is_int(id) then raise(string.format('tokenizer:decode: ids[%d] is %s, not an integer id', i, tostring(id))) end
      p[i - 1] = id
    end
  elseif type(ids) == 'cdata' and require('mtt.tensor').is_tensor(ids) then
    if ids.dtype ~= 'i32' or ids:dim() > 1 then
      raise(string.format('tokenizer:decode: a tensor of ids must be 1-D i32, got %s %s', ids.dtype,
        table.concat(ids:shape(), 'x')))
    end
    ids = ids:contiguous()
    n = ids:numel()
    p = ffi.cast('int32_t *', ids:data_ptr())
  else
    raise('tokenizer:decode: ids must be a table of ids or an i32 tensor, got ' .. type(ids))
  end
  for _ = 1, 2 do
    local need = tonumber(C.mtt_tokenizer_decode(self._c, p, n, char_buf, char_cap))
    if need < 0 then raise(U.last_error()) end
    if need <= char_cap then return ffi.string(char_buf, need) end
    char_cap = math.max(need, 2 * char_cap, 4096)
    char_buf = ffi.new('char[?]', char_cap)
  end
end

-- tok:token_id(s): the id of the token whose bytes are s (special tokens included), or nil.
function Tokenizer:token_id(s)
  check_string('tokenizer:token_id', s, 'token')
  local id = C.mtt_tokenizer_token_id(self._c, s, #s)
  if id < 0 then return nil end
  return id
end

-- tok:id_to_token(id): the bytes of token id.
function Tokenizer:id_to_token(id)
  if not U.is_int(id) then raise('tokenizer:id_to_token: id must be an integer, got ' .. tostring(id)) end
  local len = ffi.new('size_t[1]')
  local p = C.mtt_tokenizer_token_bytes(self._c, id, len)
  if p == nil then raise(U.last_error()) end
  return ffi.string(p, len[0])
end

function Tokenizer:is_special(id)
  return C.mtt_tokenizer_is_special(self._c, id) ~= 0
end

-- tok:merges(): {{a, b, result}, ...} by rank (ids).
function Tokenizer:merges()
  local a, b, r = ffi.new('int32_t[1]'), ffi.new('int32_t[1]'), ffi.new('int32_t[1]')
  local out = {}
  for i = 0, self.n_merges - 1 do
    C.mtt_tokenizer_merge(self._c, i, a, b, r)
    out[i + 1] = { a[0], b[0], r[0] }
  end
  return out
end

-- tok:save(path): Hugging Face tokenizer.json, written atomically.
function Tokenizer:save(path)
  check_string('tokenizer:save', path, 'path')
  require('mtt.sandbox').check_write(path, 'tokenizer:save')
  if C.mtt_tokenizer_save(self._c, path) ~= 0 then raise(U.last_error()) end
end

return M

-- test_corpus.lua: mtt.data.corpus over plain, compressed and archived text and JSONL (tar,
-- tar.gz, zip, .zst, .xz made with Debian's tools). The token stream is checked against one built
-- here independently from the known documents; then blocks, the validation split (disjoint,
-- evenly spread, seed-independent), batches (targets = idx shifted by one), epoch coverage,
-- seeded determinism, the resume cursor (also through a checkpoint), the token cache, the
-- unigram baseline and the error messages.
--
-- LOCAL STAND-IN: the BPE tokenizer (helper "tok") is written at the same time as this; the
-- corpus only needs tok:encode / tok:encode_into / tok.eot_id / tok.vocab_size, so this test
-- uses a byte-level tokenizer (ids = bytes, <|endoftext|> = 256) that has exactly that surface.
local ffi = require 'ffi'
local mtt = require 'mtt'
local mio = mtt.io

local function byte_tokenizer(with_encode_into)
  local tok = { vocab_size = 257, eot_id = 256 }
  function tok:encode(s) return { s:byte(1, -1) } end
  function tok:token_id(s) return s == '<|endoftext|>' and 256 or nil end
  if with_encode_into then
    function tok:encode_into(s, ptr, cap)
      assert(#s <= cap, 'encode_into: capacity too small')
      for i = 1, #s do ptr[i - 1] = s:byte(i) end
      return #s
    end
  end
  return tok
end
local tok = byte_tokenizer(true)

local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')
local checker = testlib.checker('test_corpus', { stop = true })
local check, expect_error = checker.check, checker.expect_error
local sh, write = testlib.must_sh, testlib.write
local function i32(t) return ffi.cast('int32_t *', t:contiguous():data_ptr()) end

-- ---- documents, in files ----
local dir = testlib.tmpdir()
local src = dir .. '/src'
mio.makedirs(src .. '/docs')
local rnd = 7
local function words(n)
  local w = {}
  for i = 1, n do
    rnd = (rnd * 1103515245 + 12345) % 2147483648
    w[i] = ({ 'the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'caf\195\169' })[rnd % 10 + 1]
  end
  return table.concat(w, ' ')
end
local doc = {}
for i = 1, 6 do doc[i] = words(40 + 30 * i) .. '.\n' end
write(src .. '/docs/1.txt', doc[1])
write(src .. '/docs/2.txt', doc[2])
write(src .. '/docs/3.txt', doc[3])
-- JSONL: escapes decoded, blank lines skipped, "\r\n" endings, other fields ignored
local jsonl_texts = { doc[4], 'second record "with quotes" and caf\195\169', doc[5] }
write(src .. '/data.jsonl', '{"text": ' .. string.format('%q', doc[4]):gsub('\\\n', '\\n') .. ', "id": 1}\r\n\n'
  .. '{"id": 2, "text": "second record \\"with quotes\\" and caf\\u00e9"}\n'
  .. '{"text": ' .. string.format('%q', doc[5]):gsub('\\\n', '\\n') .. '}')
write(src .. '/six.txt', doc[6])
local q = "'" .. src .. "'"
sh(string.format('cd %s && tar czf ../docs.tar.gz docs/1.txt docs/2.txt && tar cf ../docs3.tar docs/3.txt', q))
sh(string.format('cd %s && zip -q ../both.zip docs/2.txt data.jsonl', q))
sh(string.format('zstd -q -c %s/data.jsonl > %s/data.jsonl.zst && xz -c %s/six.txt > %s/six.txt.xz', q, dir, q, dir))

local files = { dir .. '/docs.tar.gz', dir .. '/both.zip', dir .. '/data.jsonl.zst', dir .. '/six.txt.xz', dir .. '/docs3.tar' }
local expected_docs = { doc[1], doc[2], doc[2], jsonl_texts[1], jsonl_texts[2], jsonl_texts[3],
  jsonl_texts[1], jsonl_texts[2], jsonl_texts[3], doc[6], doc[3] }
local stream = {}
for _, d in ipairs(expected_docs) do
  for i = 1, #d do stream[#stream + 1] = d:byte(i) end
  stream[#stream + 1] = 256
end

local T = 8
local function make(opts)
  local o = { files = files, tokenizer = tok, block_size = T, seed = 1, val_fraction = 0.1 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return mtt.data.corpus(o)
end
local c = make()
print(tostring(c))

-- the token stream
check(c.n_tokens == #stream, string.format('n_tokens %d, expected %d', c.n_tokens, #stream))
check(c.n_documents == #expected_docs, 'n_documents ' .. tostring(c.n_documents))
check(c.tokens.dtype == 'i32' and c.tokens.ndim == 1, 'tokens are a 1-d i32 tensor')
local tp = i32(c.tokens)
local bad -- the first token that differs
for i = 1, #stream do
  if tp[i - 1] ~= stream[i] then bad = bad or i end
end
check(not bad, bad and string.format('token %d is %d, expected %d', bad, tp[bad - 1], stream[bad]))
-- the same through tok:encode (a tokenizer without encode_into)
local c_enc = make({ tokenizer = byte_tokenizer(false) })
check(c_enc.n_tokens == c.n_tokens and c_enc.checksum == c.checksum, 'tok:encode path gives other tokens')
-- a folder is its files, sorted, recursively
local cf = mtt.data.corpus{ files = { src .. '/docs' }, tokenizer = tok, block_size = 4, val_fraction = 0 }
check(cf.n_tokens == #doc[1] + #doc[2] + #doc[3] + 3, 'folder input')

-- ---- blocks and the validation split ----
local nb = math.floor(#stream / (T + 1))
check(c.n_blocks == nb, 'n_blocks')
local n_val = math.max(1, math.floor(nb * 0.1))
local train, val = c:blocks('train'), c:blocks('val')
check(#val == n_val and #train == nb - n_val, string.format('split sizes %d/%d', #train, #val))
local seen = {}
for _, b in ipairs(train) do seen[b] = 'train' end
for j, b in ipairs(val) do
  check(seen[b] == nil, 'block ' .. b .. ' is in both splits')
  seen[b] = 'val'
  check(b == math.floor((j - 0.5) * nb / n_val), 'val block ' .. j .. ' not evenly spread')
end
for b = 0, nb - 1 do check(seen[b] ~= nil, 'block ' .. b .. ' in no split') end
local c2 = make({ seed = 2 })
check(table.concat(c2:blocks('val'), ',') == table.concat(val, ','), 'the validation split depends on the seed')

-- A row of a batch must be a whole block of the right split. Blocks are known by content (the
-- same 9 tokens can occur at several places of the stream, so a row names a content, not a block).
local blocks_with = {}
for k = 0, nb - 1 do
  local key = table.concat(stream, ',', k * (T + 1) + 1, (k + 1) * (T + 1))
  blocks_with[key] = blocks_with[key] or {}
  table.insert(blocks_with[key], k)
end
local function block_of(idx_row, tgt_row, split)
  for t = 1, T - 1 do check(tgt_row[t] == idx_row[t + 1], 'targets are not idx shifted by one') end
  local key = table.concat(idx_row, ',') .. ',' .. tgt_row[T]
  local list = blocks_with[key]
  check(list ~= nil, 'a batch row is not a block of the stream')
  local fit = false
  for _, b in ipairs(list) do fit = fit or seen[b] == split end
  check(fit, 'a row from the wrong split: ' .. key)
  return key
end
local function count_by_content(blocks)
  local n = {}
  for _, b in ipairs(blocks) do
    local key = table.concat(stream, ',', b * (T + 1) + 1, (b + 1) * (T + 1))
    n[key] = (n[key] or 0) + 1
  end
  return n
end

local idx, targets = c:batch('train', 4)
check(idx.dtype == 'i32' and targets.dtype == 'i32', 'batch dtypes')
check(table.concat(idx:shape(), ',') == '4,' .. T and table.concat(targets:shape(), ',') == '4,' .. T, 'batch shapes')
local it, tt = idx:totable(), targets:totable()
for r = 1, 4 do block_of(it[r], tt[r], 'train') end
local vi, vt = c:batch('val', 3)
vi, vt = vi:totable(), vt:totable()
for r = 1, 3 do block_of(vi[r], vt[r], 'val') end

-- epochs: each visits every block of the split exactly once, each in its own order
c:reset()
local B = 5 -- does not divide the number of training blocks: batches straddle epochs
local n_train = #train
local count, orders = {}, { {}, {}, {} }
local served = 0
while served < 3 * n_train do
  local bi, bt = c:batch('train', B)
  bi, bt = bi:totable(), bt:totable()
  for r = 1, B do
    if served < 3 * n_train then
      local b = block_of(bi[r], bt[r], 'train')
      count[b] = (count[b] or 0) + 1
      local e = math.floor(served / n_train) + 1
      orders[e][#orders[e] + 1] = b
    end
    served = served + 1
  end
end
for key, n in pairs(count_by_content(train)) do
  check(count[key] == 3 * n, string.format('a block served %s times in 3 epochs, expected %d', tostring(count[key]), 3 * n))
end
for key in pairs(count) do check(count_by_content(train)[key], 'a block served that is not in train') end
local o1, o2 = table.concat(orders[1], ';'), table.concat(orders[2], ';')
check(o1 ~= o2, 'two epochs in the same order')
local in_order = {}
for i, b in ipairs(train) do in_order[i] = table.concat(stream, ',', b * (T + 1) + 1, (b + 1) * (T + 1)) end
check(o1 ~= table.concat(in_order, ';'), 'the first epoch is not shuffled')
local cur = c:state().train
check(cur.epoch * n_train + cur.pos == served, 'cursor ' .. cur.epoch .. '/' .. cur.pos .. ' after ' .. served .. ' blocks')

-- ---- determinism and resume ----
local function take(corpus, n, split)
  local out = {}
  for i = 1, n do
    local a, b = corpus:batch(split or 'train', 3)
    out[i] = table.concat(a:reshape(-1):totable(), ',') .. '|' .. table.concat(b:reshape(-1):totable(), ',')
  end
  return table.concat(out, ';')
end
local a1, a2 = make(), make()
check(take(a1, 12) == take(a2, 12), 'same seed, different batches')
check(take(make({ seed = 9 }), 3) ~= take(make({ seed = 1 }), 3), 'different seeds, same batches')
local r1 = make()
take(r1, 7)
take(r1, 2, 'val')
local st = r1:state()
local after = take(r1, 9) .. take(r1, 2, 'val')
local r2 = make()
r2:set_state(st)
check(take(r2, 9) .. take(r2, 2, 'val') == after, 'resumed corpus gives other batches')
-- the cursor through a checkpoint (JSON) and back
local ckpath = dir .. '/ck/step-7.safetensors'
mtt.checkpoint.save(ckpath, { state = { data = st } })
local r3 = make()
r3:set_state(mtt.checkpoint.load(ckpath).state.data)
check(take(r3, 9) .. take(r3, 2, 'val') == after, 'corpus state through a checkpoint')
-- a state from another set-up is refused
expect_error('other block size', { 'block_size' }, function() make({ block_size = 9 }):set_state(st) end)
expect_error('other seed', { 'seed' }, function() make({ seed = 3 }):set_state(st) end)
expect_error('other corpus', { 'another corpus' }, function() make({ files = { dir .. '/docs.tar.gz' }, val_fraction = 0.2 }):set_state(st) end)
expect_error('not a state', { 'not a corpus state' }, function() make():set_state({}) end)

-- one pass in stream order for evaluation
local passed = {}
for bi, bt in c:iter('val', 2) do
  check(bi:size(1) <= 2, 'iter batch size')
  local ti, tt2 = bi:totable(), bt:totable()
  for r = 1, #ti do passed[#passed + 1] = block_of(ti[r], tt2[r], 'val') end
end
local val_keys = {}
for i, b in ipairs(val) do val_keys[i] = table.concat(stream, ',', b * (T + 1) + 1, (b + 1) * (T + 1)) end
check(table.concat(passed, ';') == table.concat(val_keys, ';'), 'iter(val) order')

-- ---- unigram baseline ----
local counts, total = {}, 0
for _, b in ipairs(train) do
  for t = 2, T + 1 do
    local v = stream[b * (T + 1) + t]
    counts[v] = (counts[v] or 0) + 1
    total = total + 1
  end
end
local h = 0
for _, n in pairs(counts) do h = h - n / total * math.log(n / total) / math.log(2) end
local got = c:unigram_bits_per_token('train')
check(math.abs(got - h) < 1e-9, string.format('unigram bits %.12f, expected %.12f', got, h))
local flat = mtt.data.corpus{ tokens = mtt.tensor({ 0, 1, 0, 1, 0, 1, 0, 1, 0 }, { dtype = 'i32' }), block_size = 2, val_fraction = 0 }
check(math.abs(flat:unigram_bits_per_token('train') - 1) < 1e-12, 'two equiprobable tokens: 1 bit')
check(flat.n_blocks == 3 and flat:num_blocks('val') == 0, 'tokens= corpus blocks')

-- ---- the token cache ----
local cache = dir .. '/cache/tokens.safetensors'
mio.makedirs(dir .. '/cache')
local k1 = make({ cache = cache })
check(not k1.from_cache and mio.stat(cache), 'the cache was not written')
local k2 = make({ cache = cache })
check(k2.from_cache and k2.checksum == c.checksum and take(k2, 4) == take(make(), 4), 'the cache was not used')
write(src .. '/six.txt', doc[6] .. 'more\n')
sh(string.format('xz -c %s/six.txt > %s/six.txt.xz', q, dir))
local k3 = make({ cache = cache })
check(not k3.from_cache and k3.n_tokens == c.n_tokens + 5, 'a changed input did not invalidate the cache')
local k4 = make({ cache = cache, tokenizer = byte_tokenizer(false), format = 'text' })
check(not k4.from_cache, 'other options reused the cache')

-- ---- formats and errors ----
write(src .. '/rows.txt', '{"body": "alpha"}\n{"body": "beta"}\n')
local fj = mtt.data.corpus{ files = { src .. '/rows.txt' }, tokenizer = tok, block_size = 2, val_fraction = 0,
  format = 'jsonl', text_field = 'body' }
check(fj.n_tokens == #'alpha' + #'beta' + 2 and fj.n_documents == 2, 'format = jsonl with text_field')
-- separator: a text member split into documents (blank pieces skipped)
write(src .. '/paras.txt', 'one para\nline two\n\nsecond para\n\n\n\nthird\n')
local fp = mtt.data.corpus{ files = { src .. '/paras.txt' }, tokenizer = tok, block_size = 2, val_fraction = 0,
  separator = '\n\n' }
check(fp.n_documents == 3 and fp.n_tokens == #'one para\nline two' + #'second para' + #'third\n' + 3,
  'separator: ' .. fp.n_documents .. ' documents, ' .. fp.n_tokens .. ' tokens')
local fp_stream = { ('one para\nline two'):byte(1, -1) }
fp_stream[#fp_stream + 1] = 256
check(i32(fp.tokens)[#fp_stream - 1] == 256 and i32(fp.tokens)[0] == ('o'):byte(), 'separator: document boundary')
write(src .. '/broken.jsonl', '{"text": "fine"}\n{"text": oops}\n')
expect_error('bad JSONL', { 'broken.jsonl', 'line 2', 'invalid JSON' }, mtt.data.corpus,
  { files = { src .. '/broken.jsonl' }, tokenizer = tok, block_size = 2 })
write(src .. '/nofield.jsonl', '{"text": "fine"}\n{"content": "x"}\n')
expect_error('missing field', { 'nofield.jsonl', 'line 2', "'text'" }, mtt.data.corpus,
  { files = { src .. '/nofield.jsonl' }, tokenizer = tok, block_size = 2 })
expect_error('unknown option', { 'blocksize', 'accepted' }, mtt.data.corpus, { blocksize = 4 })
expect_error('no tokenizer', { 'tokenizer' }, mtt.data.corpus, { files = files, block_size = 4 })
expect_error('missing file', { 'nothere.txt' }, mtt.data.corpus, { files = { dir .. '/nothere.txt' }, tokenizer = tok, block_size = 4 })
expect_error('too short', { 'blocks', 'need at least 2' }, mtt.data.corpus, { texts = { 'abc' }, tokenizer = tok, block_size = 4 })
expect_error('bad split', { "'train' or 'val'" }, c.batch, c, 'test', 2)
expect_error('bad batch size', { 'batch size' }, c.batch, c, 'train', 0)
local nv = mtt.data.corpus{ texts = { doc[1] }, tokenizer = tok, block_size = 4, val_fraction = 0 }
expect_error('empty val', { 'val', 'empty' }, nv.batch, nv, 'val', 1)

testlib.rmdir(dir)
checker.done()

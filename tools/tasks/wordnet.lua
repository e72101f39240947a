-- wordnet.lua: tasks from WordNet 3.0 (Debian wordnet-base, /usr/share/wordnet): synonyms,
-- antonyms, hypernyms, parts of speech, definitions, semantic classes, word relations, example
-- sentences with a blank, and irregular forms from the .exc files.
-- Words are restricted to lower-case single words; "common" words are those with the most
-- sense-tagged occurrences (the index files' tagsense_cnt), ties broken alphabetically.
return function(L)
  local DIR = '/usr/share/wordnet'
  local PKG = 'wordnet-base'
  local LICENSE = 'WordNet 3.0 license (Princeton University; free use, copy, modify, distribute)'
  local POS = { n = 'noun', v = 'verb', a = 'adjective', s = 'adjective', r = 'adverb' }
  local FILES = { noun = 'n', verb = 'v', adj = 'a', adv = 'r' }

  -- synsets[pos .. offset] = {words = {...}, lex = lexname number, ptrs = {{sym, key, src, dst}},
  -- gloss, pos}, parsed on first use (parsing all 117k synsets would take seconds)
  local raw = {}
  for _, file in ipairs({ 'noun', 'verb', 'adj', 'adv' }) do
    local p = FILES[file]
    local text = L.need(DIR .. '/data.' .. file, PKG)
    for off, line in text:gmatch('(%d%d%d%d%d%d%d%d)( [^\n]*)') do raw[p .. off] = line end
  end
  local function parse(key, line)
    local head, gloss = line:match('^(.-) | (.-)%s*$')
    local tok = {}
    for w in head:gmatch('%S+') do tok[#tok + 1] = w end
    local s = { lex = tonumber(tok[1]), pos = tok[2], words = {}, ptrs = {}, gloss = gloss }
    local nw = tonumber(tok[3], 16)
    for i = 1, nw do s.words[i] = tok[2 + 2 * i]:gsub('%(.-%)$', ''):gsub('_', ' ') end
    local k = 3 + 2 * nw + 1
    local np = tonumber(tok[k])
    for i = 0, np - 1 do
      local sym, off, p, st = tok[k + 1 + 4 * i], tok[k + 2 + 4 * i], tok[k + 3 + 4 * i], tok[k + 4 + 4 * i]
      s.ptrs[#s.ptrs + 1] = { sym = sym, key = (p == 's' and 'a' or p) .. off,
        src = tonumber(st:sub(1, 2), 16), dst = tonumber(st:sub(3, 4), 16) }
    end
    return s
  end
  local synsets = setmetatable({}, { __index = function(t, key)
    local line = raw[key]
    if not line then L.fail('WordNet synset ' .. key .. ' not found (is wordnet-base complete?)') end
    local s = parse(key, line)
    rawset(t, key, s)
    return s
  end })

  -- index: lemma -> {pos -> {tagged = count, keys = synsets, most frequent sense first}}, for
  -- lower-case single-word lemmas only
  local index, common = {}, {}
  for _, file in ipairs({ 'noun', 'verb', 'adj', 'adv' }) do
    local p = FILES[file]
    local text = L.need(DIR .. '/index.' .. file, PKG)
    for line in text:gmatch('\n([a-z]+ [^\n]*)') do
      local tok = {}
      for w in line:gmatch('%S+') do tok[#tok + 1] = w end
      local lemma, cnt, pcnt = tok[1], tonumber(tok[3]), tonumber(tok[4])
      local tagged = tonumber(tok[5 + pcnt + 1])
      local keys = {}
      for i = 1, cnt do keys[i] = p .. tok[5 + pcnt + 2 + i - 1] end
      index[lemma] = index[lemma] or {}
      index[lemma][p] = { tagged = tagged, keys = keys }
      if #lemma >= 3 and tagged > 0 then
        common[#common + 1] = { lemma = lemma, pos = p, tagged = tagged }
      end
    end
  end
  table.sort(common, function(a, b)
    if a.tagged ~= b.tagged then return a.tagged > b.tagged end
    if a.lemma ~= b.lemma then return a.lemma < b.lemma end
    return a.pos < b.pos
  end)

  local function simple(w) return w:match('^[a-z]+$') ~= nil end
  local function synset_words(s, except)
    local t = {}
    for _, w in ipairs(s.words) do if simple(w) and w ~= except then t[#t + 1] = w end end
    return t
  end
  local function short_gloss(g)
    return L.trim((g:gsub('%s*;%s*".*$', ''):gsub(';.*$', ''):gsub('%s*%(.-%)', '')))
  end

  local tasks = {}
  local function add(t)
    t.family, t.package, t.license, t.license_short = 'wordnet', PKG, LICENSE, 'WordNet 3.0'
    t.source = 'WordNet 3.0'
    t.domains = t.domains or { 'Dictionary' }
    t.reasoning = t.reasoning or { 'Commonsense Reasoning -> Lexical' }
    tasks[#tasks + 1] = t
  end

  -- synonyms of common words: the other words of the most frequent sense's synset
  do
    local pool, seen = {}, {}
    for _, c in ipairs(common) do
      if not seen[c.lemma] then
        local s = synsets[index[c.lemma][c.pos].keys[1]]
        local syn = synset_words(s, c.lemma)
        if #syn > 0 then seen[c.lemma] = true; pool[#pool + 1] = { input = c.lemma, outputs = syn } end
      end
    end
    add({ name = 'wordnet_synonym', category = 'Synonym Generation', metric = 'exact_match', pool = pool,
      definition = 'Give a synonym of the word.',
      explain = function(i, o) return '"' .. o .. '" means the same as "' .. i .. '".' end })
  end

  -- antonyms: lexical "!" pointers from the word itself
  do
    local pool, seen = {}, {}
    for _, c in ipairs(common) do
      local key = c.lemma .. c.pos
      if not seen[key] then
        seen[key] = true
        local outs, have = {}, {}
        for _, k in ipairs(index[c.lemma][c.pos].keys) do
          local s = synsets[k]
          for _, p in ipairs(s.ptrs) do
            if p.sym == '!' and s.words[p.src] == c.lemma then
              local w = synsets[p.key].words[p.dst]
              if w and simple(w) and not have[w] then have[w] = true; outs[#outs + 1] = w end
            end
          end
        end
        if #outs > 0 and not seen[c.lemma] then seen[c.lemma] = true; pool[#pool + 1] = { input = c.lemma, outputs = outs } end
      end
    end
    add({ name = 'wordnet_antonym', category = 'Antonym Generation', metric = 'exact_match', pool = pool,
      definition = 'Give a word with the opposite meaning.',
      explain = function(i, o) return '"' .. o .. '" is the opposite of "' .. i .. '".' end })
  end

  -- hypernyms of common nouns (most frequent sense)
  local function hypernyms(s)
    local t = {}
    for _, p in ipairs(s.ptrs) do if p.sym == '@' or p.sym == '@i' then t[#t + 1] = synsets[p.key] end end
    return t
  end
  do
    local pool = {}
    for _, c in ipairs(common) do
      if c.pos == 'n' then
        local outs = {}
        for _, h in ipairs(hypernyms(synsets[index[c.lemma].n.keys[1]])) do
          for _, w in ipairs(synset_words(h)) do outs[#outs + 1] = w end
        end
        if #outs > 0 then pool[#pool + 1] = { input = c.lemma, outputs = outs } end
      end
    end
    add({ name = 'wordnet_hypernym', category = 'Word Semantics', metric = 'exact_match', pool = pool,
      definition = 'Give a more general word that the noun is a kind of.',
      explain = function(i, o) return 'A ' .. i .. ' is a kind of ' .. o .. '.' end })
  end

  -- part of speech of words that have only one
  do
    local by = { n = {}, v = {}, a = {}, r = {} }
    local seen = {}
    for _, c in ipairs(common) do
      if not seen[c.lemma] then
        seen[c.lemma] = true
        local n = 0
        for _ in pairs(index[c.lemma]) do n = n + 1 end
        if n == 1 then table.insert(by[c.pos], { input = c.lemma, outputs = { POS[c.pos] } }) end
      end
    end
    local pool = {}
    for i = 1, 150 do
      for _, p in ipairs({ 'n', 'v', 'a', 'r' }) do if by[p][i] then pool[#pool + 1] = by[p][i] end end
    end
    add({ name = 'wordnet_part_of_speech', category = 'Pos Tagging', metric = 'acc', pool = pool,
      options = { 'noun', 'verb', 'adjective', 'adverb' },
      definition = 'Is the word a noun, a verb, an adjective or an adverb?',
      explain = function(i, o) return '"' .. i .. '" is used as ' .. (o == 'adjective' and 'an ' or o == 'adverb' and 'an ' or 'a ') .. o .. '.' end })
  end

  -- definition -> word, and word -> definition (most frequent sense of common words)
  do
    local to_word, to_def, seen = {}, {}, {}
    for _, c in ipairs(common) do
      if not seen[c.lemma] then
        seen[c.lemma] = true
        local s = synsets[index[c.lemma][c.pos].keys[1]]
        local g = short_gloss(s.gloss)
        if #g >= 8 and #g <= 70 and not g:find(c.lemma, 1, true) then
          local words = { c.lemma }
          for _, w in ipairs(synset_words(s, c.lemma)) do words[#words + 1] = w end
          to_word[#to_word + 1] = { input = g, outputs = words }
          to_def[#to_def + 1] = { input = c.lemma, outputs = { g } }
        end
      end
    end
    add({ name = 'wordnet_definition_to_word', category = 'Word Semantics', metric = 'exact_match', pool = to_word,
      definition = 'Give the word that the definition describes.',
      explain = function(i, o) return '"' .. o .. '" means: ' .. i .. '.' end })
    add({ name = 'wordnet_word_to_definition', category = 'Word Semantics', metric = 'rouge_l', pool = to_def,
      definition = 'Give a short definition of the word.', max_output = 70,
      explain = function(i, o) return '"' .. i .. '" means: ' .. o .. '.' end })
  end

  -- semantic class (lexicographer file) of common nouns
  do
    local CLASSES = { [5] = 'animal', [13] = 'food', [20] = 'plant', [18] = 'person', [6] = 'artifact',
      [15] = 'location', [8] = 'body', [28] = 'time' }
    local options = { 'animal', 'food', 'plant', 'person', 'artifact', 'location', 'body', 'time' }
    local by, seen = {}, {}
    for _, c in ipairs(common) do
      if c.pos == 'n' and not seen[c.lemma] then
        seen[c.lemma] = true
        local cls = CLASSES[synsets[index[c.lemma].n.keys[1]].lex]
        if cls then by[cls] = by[cls] or {}; table.insert(by[cls], { input = c.lemma, outputs = { cls } }) end
      end
    end
    local pool = {}
    for i = 1, 80 do
      for _, cls in ipairs(options) do if by[cls][i] then pool[#pool + 1] = by[cls][i] end end
    end
    add({ name = 'wordnet_noun_class', category = 'Word Semantics', metric = 'acc', pool = pool, options = options,
      definition = 'Which class does the noun belong to: animal, food, plant, person, artifact, location, body or time?',
      explain = function(i, o) return 'A ' .. i .. ' is a kind of ' .. o .. '.' end })
  end

  -- relation yes/no: "is X a kind of Y" (ancestors up to 3 levels) and "do X and Y mean the same"
  do
    local nouns, isa, syn = {}, {}, {}
    for _, c in ipairs(common) do if c.pos == 'n' then nouns[#nouns + 1] = c.lemma end end
    local r = L.rng('pool:wordnet_is_a')
    for i, noun in ipairs(nouns) do
      if i > 1200 then break end
      local s = synsets[index[noun].n.keys[1]]
      local anc, frontier = {}, { s }
      for _ = 1, 3 do
        local nxt = {}
        for _, f in ipairs(frontier) do
          for _, h in ipairs(hypernyms(f)) do
            nxt[#nxt + 1] = h
            for _, w in ipairs(synset_words(h)) do anc[#anc + 1] = w end
          end
        end
        frontier = nxt
      end
      if #anc > 0 then
        if r:int(2) == 1 then
          isa[#isa + 1] = { input = noun .. ', ' .. r:pick(anc), outputs = { 'yes' } }
        else
          local other = nouns[r:int(math.min(#nouns, 1500))]
          local bad = false
          for _, w in ipairs(anc) do bad = bad or w == other end
          if other ~= noun and not bad then isa[#isa + 1] = { input = noun .. ', ' .. other, outputs = { 'no' } } end
        end
      end
    end
    add({ name = 'wordnet_is_a', category = 'Word Relation Classification', metric = 'acc', pool = isa,
      options = { 'yes', 'no' }, definition = 'Is the first noun a kind of the second one? Answer yes or no.',
      explain = function(i, o)
        local a, b = i:match('^(.-), (.*)$')
        return 'A ' .. a .. (o == 'yes' and ' is' or ' is not') .. ' a kind of ' .. b .. '.'
      end })
    local r2 = L.rng('pool:wordnet_same_meaning')
    local words = {}
    for _, c in ipairs(common) do words[#words + 1] = c end
    for i, c in ipairs(words) do
      if i > 3000 then break end
      local s = synsets[index[c.lemma][c.pos].keys[1]]
      local others = synset_words(s, c.lemma)
      if #others > 0 and r2:int(2) == 1 then
        syn[#syn + 1] = { input = c.lemma .. ', ' .. r2:pick(others), outputs = { 'yes' } }
      else
        local o = words[r2:int(math.min(#words, 3000))].lemma
        local same = false
        for _, k in ipairs((index[o][c.pos] or { keys = {} }).keys) do
          for _, k2 in ipairs(index[c.lemma][c.pos].keys) do same = same or k == k2 end
        end
        if o ~= c.lemma and not same then syn[#syn + 1] = { input = c.lemma .. ', ' .. o, outputs = { 'no' } } end
      end
    end
    add({ name = 'wordnet_same_meaning', category = 'Word Relation Classification', metric = 'acc', pool = syn,
      options = { 'yes', 'no' }, definition = 'Can the two words mean the same thing? Answer yes or no.',
      explain = function(i, o)
        local a, b = i:match('^(.-), (.*)$')
        return '"' .. a .. '" and "' .. b .. '"' .. (o == 'yes' and ' are synonyms.' or ' are not synonyms.')
      end })
  end

  -- example sentences with a blank: WordNet's quoted usage examples that contain the word itself
  do
    local pool, used = {}, {}
    for _, c in ipairs(common) do
      local s = synsets[index[c.lemma][c.pos].keys[1]]
      if not used[s] then
        used[s] = true
        for ex in s.gloss:gmatch('"([^"]+)"') do
          local a, b = ex:find('%f[%a]' .. c.lemma .. '%f[%A]')
          if a and #ex <= 70 and #ex >= 15 then
            pool[#pool + 1] = { input = ex:sub(1, a - 1) .. '___' .. ex:sub(b + 1), outputs = { c.lemma } }
            break
          end
        end
      end
    end
    add({ name = 'wordnet_fill_blank', category = 'Fill in The Blank', metric = 'exact_match', pool = pool,
      definition = 'Give the word that fills the blank (___) in the sentence.',
      explain = function(i, o) return '"' .. o .. '" completes the sentence.' end })
  end

  -- irregular forms from the exception lists (sorted by the inflected form)
  local function exc(file)
    local t = {}
    for _, line in ipairs(L.lines(L.need(DIR .. '/' .. file, PKG))) do
      local a, b = line:match('^(%S+) (%S+)$')
      if a and simple(a) and simple(b) and a ~= b and #a <= 9 then t[#t + 1] = { a, b } end
    end
    return t
  end
  local function tagged(lemma, p) return index[lemma] and index[lemma][p] and index[lemma][p].tagged or 0 end
  local function by_frequency(pairs, p)
    table.sort(pairs, function(x, y)
      local fx, fy = tagged(x[2], p), tagged(y[2], p)
      if fx ~= fy then return fx > fy end
      return x[1] < y[1]
    end)
    return pairs
  end
  do
    local nouns = by_frequency(exc('noun.exc'), 'n')
    local pool = {}
    for _, p in ipairs(nouns) do pool[#pool + 1] = { input = p[1], outputs = { p[2] } } end
    add({ name = 'wordnet_singular', category = 'Morphology', metric = 'exact_match', pool = pool,
      definition = 'Give the singular form of the plural noun.',
      explain = function(i, o) return 'One ' .. o .. ', several ' .. i .. '.' end })
    local verbs = by_frequency(exc('verb.exc'), 'v')
    pool = {}
    for _, p in ipairs(verbs) do pool[#pool + 1] = { input = p[1], outputs = { p[2] } } end
    add({ name = 'wordnet_verb_base_form', category = 'Morphology', metric = 'exact_match', pool = pool,
      definition = 'Give the base form of the verb.',
      explain = function(i, o) return '"' .. i .. '" is a form of the verb "' .. o .. '".' end })
    -- analogies "a : b :: c : ?" with both pairs from one relation: plural, comparative,
    -- superlative, -ing form (the .exc lists mix the last three, so they are told apart by ending)
    local adjs = by_frequency(exc('adj.exc'), 'a')
    local classes = { nouns, {}, {}, {} }
    for _, p in ipairs(adjs) do
      if p[1]:match('est$') then table.insert(classes[3], p) elseif p[1]:match('er$') then table.insert(classes[2], p) end
    end
    for _, p in ipairs(verbs) do if p[1]:match('ing$') then table.insert(classes[4], p) end end
    local r = L.rng('pool:wordnet_analogy')
    local per = {}
    for c, t in ipairs(classes) do
      per[c] = {}
      local n = math.min(#t, 200)
      for i = 1, n do
        local j = r:int(n)
        if j ~= i and t[j][2] ~= t[i][2] then
          table.insert(per[c], { input = t[j][2] .. ' : ' .. t[j][1] .. ' :: ' .. t[i][2] .. ' : ?', outputs = { t[i][1] } })
        end
      end
    end
    pool = {}
    for i = 1, 200 do for c = 1, 4 do if per[c][i] then pool[#pool + 1] = per[c][i] end end end
    add({ name = 'wordnet_analogy', category = 'Word Analogy', metric = 'exact_match', pool = pool,
      definition = 'Complete the analogy.',
      explain = function(i, o) return 'The same change turns ' .. i:match(':: (%S+)') .. ' into ' .. o .. '.' end })
  end

  -- adverb -> adjective (pertainym pointers "\" of adverbs)
  do
    local pool, seen = {}, {}
    for _, c in ipairs(common) do
      if c.pos == 'r' and not seen[c.lemma] then
        seen[c.lemma] = true
        local outs = {}
        for _, k in ipairs(index[c.lemma].r.keys) do
          local s = synsets[k]
          for _, p in ipairs(s.ptrs) do
            if p.sym == '\\' and s.words[p.src] == c.lemma then
              local w = synsets[p.key].words[p.dst]
              if w and simple(w) and w ~= c.lemma then outs[#outs + 1] = w end
            end
          end
        end
        if #outs > 0 then pool[#pool + 1] = { input = c.lemma, outputs = outs } end
      end
    end
    add({ name = 'wordnet_adverb_to_adjective', category = 'Morphology', metric = 'exact_match', pool = pool,
      definition = 'Give the adjective that the adverb is derived from.',
      explain = function(i, o) return '"' .. i .. '" comes from "' .. o .. '".' end })
  end
  return tasks
end

-- cmudict.lua: phonetic tasks from the CMU Pronouncing Dictionary 0.4 as festival ships it
-- (Debian festlex-cmu, /usr/share/festival/dicts/cmu/cmudict-0.4.out): rhymes and syllables.
-- Only words that WordNet also lists (wordnet-base's index files) are used, as a filter that keeps
-- ordinary English words and leaves out the dictionary's many names; nothing else of WordNet is.
return function(L)
  local PKG = 'festlex-cmu'
  local path = '/usr/share/festival/dicts/cmu/cmudict-0.4.out'
  local english = {}
  for _, f in ipairs({ 'noun', 'verb', 'adj', 'adv' }) do
    for lemma in L.need('/usr/share/wordnet/index.' .. f, 'wordnet-base'):gmatch('\n([a-z]+) ') do english[lemma] = true end
  end
  -- entries: ("word" pos (((ph ph) stress) ((ph) stress) ...)); the first entry of a word wins
  local pron, words = {}, {}
  for line in L.need(path, PKG):gmatch('[^\n]+') do
    local word, rest = line:match('^%("([a-z]+)" %S+ %((.*)%)%)$')
    if word and english[word] and not pron[word] and #word >= 3 and #word <= 10 then
      local syl = {}
      for phones, stress in rest:gmatch('%(%(([^()]*)%) (%d)%)') do
        syl[#syl + 1] = { phones = phones, stress = tonumber(stress) }
      end
      if #syl > 0 then pron[word] = syl; words[#words + 1] = word end
    end
  end
  table.sort(words)
  -- the rhyme part: from the vowel of the last stressed syllable to the end
  local VOWELS = { aa = 1, ae = 1, ah = 1, ao = 1, aw = 1, ax = 1, ay = 1, eh = 1, er = 1, ey = 1, ih = 1,
    iy = 1, ow = 1, oy = 1, uh = 1, uw = 1 }
  local function rhyme(w)
    local syl = pron[w]
    local last = 1
    for i, s in ipairs(syl) do if s.stress > 0 then last = i end end
    local parts, seen_vowel = {}, false
    for i = last, #syl do
      for ph in syl[i].phones:gmatch('%S+') do
        if seen_vowel or VOWELS[ph] then seen_vowel = true; parts[#parts + 1] = ph end
      end
    end
    return table.concat(parts, ' ')
  end
  local groups, keys = {}, {}
  for _, w in ipairs(words) do
    local k = rhyme(w)
    if not groups[k] then groups[k] = {}; keys[#keys + 1] = k end
    table.insert(groups[k], w)
  end

  local tasks = {}
  local function add(t)
    t.family, t.package, t.source = 'cmudict', PKG, 'CMU Pronouncing Dictionary 0.4 (festlex-cmu)'
    t.license, t.license_short = 'CMUdict licence (free use, no commercial restriction; festlex-cmu)', 'CMUdict (BSD-like)'
    t.category, t.domains, t.reasoning = 'Phonetics', { 'Linguistics' }, {}
    tasks[#tasks + 1] = t
  end
  -- rhymes share the rhyme part; a word that merely ends with the other (cat/bobcat) does not
  -- count as its rhyme
  local r = L.rng('pool:cmudict')
  local shuffled = r:shuffle(words)
  local yes_no, gen = {}, {}
  for _, w in ipairs(shuffled) do
    local g = groups[rhyme(w)]
    local others = {}
    for _, o in ipairs(g) do if o ~= w and not o:find(w .. '$') and not w:find(o .. '$') then others[#others + 1] = o end end
    if #others > 0 then
      if r:int(2) == 1 then
        yes_no[#yes_no + 1] = { input = w .. ', ' .. r:pick(others), outputs = { 'yes' } }
      else
        local o = r:pick(words)
        if rhyme(o) ~= rhyme(w) then yes_no[#yes_no + 1] = { input = w .. ', ' .. o, outputs = { 'no' } } end
      end
      if #others >= 2 and #w <= 6 then
        local refs = r:sample(others, 12)
        table.sort(refs)
        gen[#gen + 1] = { input = w, outputs = refs }
      end
    end
  end
  add({ name = 'cmu_rhyme', metric = 'acc', options = { 'yes', 'no' }, pool = yes_no,
    definition = 'Do the two words rhyme? Answer yes or no.',
    explain = function(i, o)
      local a, b = i:match('^(.-), (.*)$')
      return '"' .. a .. '" and "' .. b .. '"' .. (o == 'yes' and ' end with the same sound.' or ' end differently.')
    end })
  add({ name = 'cmu_rhyme_generation', metric = 'exact_match', pool = gen,
    definition = 'Give a word that rhymes with the word.',
    explain = function(i, o) return '"' .. o .. '" rhymes with "' .. i .. '".' end })
  -- syllable counts, balanced over 1..4
  local by = { {}, {}, {}, {} }
  for _, w in ipairs(shuffled) do
    local n = #pron[w]
    if by[n] then table.insert(by[n], { input = w, outputs = { tostring(n) } }) end
  end
  local syl = {}
  for i = 1, 130 do for n = 1, 4 do if by[n][i] then syl[#syl + 1] = by[n][i] end end end
  add({ name = 'cmu_syllable_count', metric = 'acc', options = { '1', '2', '3', '4' }, pool = syl,
    definition = 'How many syllables does the word have?',
    explain = function(i, o) return '"' .. i .. '" has ' .. o .. (o == '1' and ' syllable.' or ' syllables.') end })
  return tasks
end

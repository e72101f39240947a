-- bible.lua: tasks from the King James Bible (Debian bible-kjv-text, read with bible-kjv's
-- `bible` program): verse completion and a word left out of a verse. Short verses only.
return function(L)
  local p = io.open('/usr/lib/bible.data', 'rb')
  if not p then L.fail('/usr/lib/bible.data is missing: install the Debian package bible-kjv-text (./build.sh deps)') end
  p:close()
  -- -l with a wide line keeps each verse on one line; stdin closed so that it never prompts
  local pipe = io.popen('bible -l100000 gen1:1-rev22:21 </dev/null 2>/dev/null', 'r')
  local text = pipe and pipe:read('*a') or ''
  if pipe then pipe:close() end
  if #text == 0 then L.fail('`bible` produced no text: install the Debian packages bible-kjv and bible-kjv-text') end
  local verses = {}
  for line in text:gmatch('[^\n]+') do
    local v = line:match('^%s+%d+%s+(.*)$')
    if v then
      v = L.trim(v)
      if #v >= 25 and #v <= 60 then verses[#verses + 1] = v end
    end
  end
  local tasks = {}
  local function add(t)
    t.family, t.package, t.source = 'bible', 'bible-kjv-text', 'King James Bible (bible-kjv-text)'
    t.license, t.license_short = 'GPL-2+ (bible-kjv-text; the KJV text is public domain)', 'GPL-2+'
    t.domains, t.reasoning = { 'Religion' }, {}
    t.max_input, t.max_output = 100, 60
    tasks[#tasks + 1] = t
  end
  -- completion: the verse cut after its first half of words
  local r = L.rng('pool:bible')
  local completion, blank = {}, {}
  for i, v in ipairs(verses) do
    local words = {}
    for w in v:gmatch('%S+') do words[#words + 1] = w end
    if #words >= 5 then
      local k = math.floor(#words / 2)
      completion[#completion + 1] = { input = table.concat(words, ' ', 1, k),
        outputs = { table.concat(words, ' ', k + 1) } }
      -- a blank over one word of 4+ letters (punctuation stays)
      local cands = {}
      for j, w in ipairs(words) do if w:match('^%a%a%a%a+[,.;:]?$') then cands[#cands + 1] = j end end
      if #cands > 0 then
        local j = cands[r:int(#cands)]
        local word, punct = words[j]:match('^(%a+)(.*)$')
        local t = {}
        for q, w in ipairs(words) do t[q] = q == j and '___' .. punct or w end
        blank[#blank + 1] = { input = table.concat(t, ' '), outputs = { word } }
      end
    end
  end
  -- verses in Bible order: a stride spreads the kept ones over the whole book
  local function spread(pool, n)
    local out, step = {}, math.max(1, math.floor(#pool / n))
    for i = 1, #pool, step do out[#out + 1] = pool[i] end
    return out
  end
  add({ name = 'bible_verse_completion', category = 'Text Completion', metric = 'rouge_l',
    pool = spread(completion, 520), definition = 'Complete the verse of the King James Bible.',
    explain = function(i, o) return 'The verse reads: ' .. i .. ' ' .. o end })
  add({ name = 'bible_fill_blank', category = 'Fill in The Blank', metric = 'exact_match',
    pool = spread(blank, 520), definition = 'Give the word missing (___) from the Bible verse.',
    explain = function(i, o) return 'The verse has "' .. o .. '" there.' end })
  return tasks
end

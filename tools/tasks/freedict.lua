-- freedict.lua: word translation between English and French or Spanish, and language
-- identification, from the FreeDict dictionaries (Debian dict-freedict-eng-fra and
-- dict-freedict-eng-spa, /usr/share/dictd: a dictd .index of base64 offsets into a dictzip file).
return function(L)
  local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  local digit = {}
  for i = 1, 64 do digit[B64:sub(i, i)] = i - 1 end
  local function b64(s)
    local n = 0
    for c in s:gmatch('.') do n = n * 64 + (digit[c] or L.fail('bad base64 number ' .. s .. ' in a FreeDict index')) end
    return n
  end
  local function simple(w) return w:find('^[%l\195\197][%l\128-\191\197]*$') ~= nil and not w:find('[%p%d ]') end

  -- read(pair): english headword -> {translations}, in index (alphabetical) order
  local function read(pair)
    local pkg = 'dict-freedict-' .. pair
    local base = '/usr/share/dictd/freedict-' .. pair
    local index = L.need(base .. '.index', pkg)
    local dict = L.need(base .. '.dict.dz', pkg)
    local heads, trans = {}, {}
    for head, off, len in index:gmatch('([^\t\n]+)\t([^\t\n]+)\t([^\t\n]+)') do
      if head:match('^[a-z]+$') then
        local entry = dict:sub(b64(off) + 1, b64(off) + b64(len))
        local lines = L.lines(entry)
        if not trans[head] then trans[head] = {}; heads[#heads + 1] = head end
        local have = {}
        for _, t in ipairs(trans[head]) do have[t] = true end
        for k = 2, #lines do
          local line = lines[k]:gsub('^%d+%.%s*', '')
          for w in (line .. ','):gmatch('([^,]+),') do
            w = L.trim((w:gsub('%b()', ''):gsub('%b<>', '')))
            if simple(w) and not have[w] then have[w] = true; table.insert(trans[head], w) end
          end
        end
        if #trans[head] == 0 then
          trans[head] = nil
          heads[#heads] = nil
        end
      end
    end
    return heads, trans
  end

  local tasks = {}
  local function add(t)
    t.family, t.category, t.reasoning, t.domains = 'freedict', t.category or 'Translation', {}, { 'Dictionary' }
    t.license, t.license_short = 'GPL-2+ (FreeDict)', 'GPL-2+'
    t.metric = t.metric or 'exact_match'
    tasks[#tasks + 1] = t
  end
  -- spread(list, n): every k-th item, so that a capped task covers the whole alphabet
  local function spread(list, n)
    local out, step = {}, math.max(1, math.floor(#list / n))
    for i = 1, #list, step do out[#out + 1] = list[i] end
    return out
  end
  local words = { English = {}, French = {}, Spanish = {} }
  for _, lang in ipairs({ { 'eng-fra', 'French', 'fra' }, { 'eng-spa', 'Spanish', 'spa' } }) do
    local pair, name = lang[1], lang[2]
    local heads, trans = read(pair)
    local fwd, back, inv, order = {}, {}, {}, {}
    for _, h in ipairs(heads) do
      fwd[#fwd + 1] = { input = h, outputs = trans[h] }
      words.English[h] = (words.English[h] or 0) + 1
      for _, t in ipairs(trans[h]) do
        if not inv[t] then inv[t] = {}; order[#order + 1] = t end
        table.insert(inv[t], h)
        words[name][t] = true
      end
    end
    table.sort(order)
    for _, t in ipairs(order) do back[#back + 1] = { input = t, outputs = inv[t] } end
    local src = 'FreeDict English-' .. name .. ' (dict-freedict-' .. pair .. ')'
    add({ name = 'freedict_english_to_' .. name:lower(), pool = spread(fwd, 520), package = 'dict-freedict-' .. pair,
      source = src, definition = 'Translate the English word into ' .. name .. '.',
      languages = { 'English', name },
      explain = function(i, o) return '"' .. i .. '" is "' .. o .. '" in ' .. name .. '.' end })
    add({ name = 'freedict_' .. name:lower() .. '_to_english', pool = spread(back, 520), package = 'dict-freedict-' .. pair,
      source = src, definition = 'Translate the ' .. name .. ' word into English.',
      languages = { name, 'English' },
      explain = function(i, o) return '"' .. i .. '" is "' .. o .. '" in English.' end })
  end
  -- language identification: words that only one of the three languages has
  local lists = {}
  for _, lang in ipairs({ 'English', 'French', 'Spanish' }) do
    local t = {}
    for _, w in ipairs(L.sorted_keys(words[lang])) do
      local n = 0
      for _, other in ipairs({ 'English', 'French', 'Spanish' }) do if words[other][w] then n = n + 1 end end
      if n == 1 and #w >= 4 then t[#t + 1] = { input = w, outputs = { lang } } end
    end
    lists[lang] = spread(t, 180)
  end
  local pool = {}
  for i = 1, 180 do
    for _, lang in ipairs({ 'English', 'French', 'Spanish' }) do if lists[lang][i] then pool[#pool + 1] = lists[lang][i] end end
  end
  add({ name = 'freedict_language_id', category = 'Language Identification', metric = 'acc', pool = pool,
    options = { 'English', 'French', 'Spanish' }, package = 'dict-freedict-eng-fra, dict-freedict-eng-spa',
    source = 'FreeDict English-French and English-Spanish', languages = { { 'English', 'French', 'Spanish' }, 'English' },
    definition = 'Is the word English, French or Spanish?',
    explain = function(i, o) return '"' .. i .. '" is a ' .. o .. ' word.' end })
  return tasks
end

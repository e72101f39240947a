-- fortunes.lua: text categorization of fortune cookies by the file they come from (Debian
-- fortunes, /usr/share/games/fortunes/*.u8: UTF-8 texts separated by "%" lines). Short fortunes
-- only, joined onto one line; the classes are balanced.
return function(L)
  local DIR = '/usr/share/games/fortunes'
  local function read(name)
    local t, seen = {}, {}
    local text = L.need(DIR .. '/' .. name .. '.u8', 'fortunes')
    for chunk in (text .. '\n%\n'):gmatch('(.-)\n%%\n') do
      local s = L.trim((chunk:gsub('%s+', ' ')))
      if #s >= 15 and #s <= 60 and L.valid_utf8(s) and not seen[s] then seen[s] = true; t[#t + 1] = s end
    end
    return t
  end
  local tasks = {}
  local function task(name, classes, per_class)
    local lists = {}
    for _, c in ipairs(classes) do lists[c] = read(c) end
    local pool = {}
    for i = 1, per_class do
      for _, c in ipairs(classes) do
        if lists[c][i] then pool[#pool + 1] = { input = lists[c][i], outputs = { c } } end
      end
    end
    tasks[#tasks + 1] = {
      name = name, family = 'fortunes', category = 'Text Categorization', metric = 'acc', options = classes,
      pool = pool, package = 'fortunes', source = 'fortune cookie files (fortunes)',
      license = 'BSD (fortunes; University of California)', license_short = 'BSD',
      domains = { 'Miscellaneous' }, reasoning = {}, max_input = 60,
      -- the labels are in "Answer Options"; listing them here would cost ~10 tokens a prompt
      definition = 'Give the topic of the quotation.',
      explain = function(i, o) return 'The quotation is about ' .. o .. '.' end,
    }
  end
  task('fortune_topic', { 'computers', 'politics', 'science', 'work' }, 130)
  task('fortune_topic_small', { 'art', 'food', 'men-women', 'wisdom' }, 130)
  return tasks
end

-- isocodes.lua: look-up tasks from the ISO code lists of Debian's iso-codes package
-- (/usr/share/iso-codes/json): countries (ISO 3166-1), subdivisions (3166-2), currencies (4217),
-- languages (639-2) and scripts (15924).
local cjson = require('cjson').new()

return function(L)
  local DIR = '/usr/share/iso-codes/json'
  local PKG = 'iso-codes'
  local function load(name)
    local ok, doc = pcall(cjson.decode, L.need(DIR .. '/iso_' .. name .. '.json', PKG))
    if not ok then L.fail(DIR .. '/iso_' .. name .. '.json: ' .. tostring(doc)) end
    local list = doc[name] or L.fail(DIR .. '/iso_' .. name .. '.json has no "' .. name .. '" list')
    return list
  end
  local tasks = {}
  local add = L.adder(tasks, { family = 'isocodes', package = PKG, source = 'ISO code lists (iso-codes)',
    license = 'LGPL-2.1+ (iso-codes)', license_short = 'LGPL-2.1+' },
    { category = 'Misc.', domains = { 'Countries' }, reasoning = {}, metric = 'exact_match' })
  local function by(list, field)
    local t = {}
    for _, e in ipairs(list) do if e[field] then t[#t + 1] = e end end
    table.sort(t, function(a, b) return a[field] < b[field] end)
    return t
  end

  local countries = by(load('3166-1'), 'alpha_2')
  local function cname(c) return c.common_name or c.name end
  local function names(c)
    local t = { cname(c) }
    if c.common_name and c.name ~= c.common_name then t[2] = c.name end
    return t
  end
  local function pool(list, fn)
    local p = {}
    for _, e in ipairs(list) do
      local i, o = fn(e)
      if i and o then p[#p + 1] = { input = i, outputs = type(o) == 'table' and o or { o } } end
    end
    return p
  end
  add({ name = 'iso_country_to_alpha2', definition = 'Give the two-letter ISO code of the country.',
    pool = pool(countries, function(c) return cname(c), c.alpha_2 end),
    explain = function(i, o) return 'The ISO 3166 code of ' .. i .. ' is ' .. o .. '.' end })
  add({ name = 'iso_alpha2_to_country', definition = 'Give the country that has this two-letter ISO code.',
    pool = pool(countries, function(c) return c.alpha_2, names(c) end),
    explain = function(i, o) return i .. ' is the ISO 3166 code of ' .. o .. '.' end })
  add({ name = 'iso_country_to_alpha3', definition = 'Give the three-letter ISO code of the country.',
    pool = pool(countries, function(c) return cname(c), c.alpha_3 end),
    explain = function(i, o) return 'The three-letter code of ' .. i .. ' is ' .. o .. '.' end })
  add({ name = 'iso_alpha3_to_alpha2', definition = 'Convert the three-letter ISO country code to the two-letter code.',
    pool = pool(countries, function(c) return c.alpha_3, c.alpha_2 end),
    explain = function(i, o) return i .. ' and ' .. o .. ' name the same country.' end })
  add({ name = 'iso_country_to_numeric', definition = 'Give the three-digit ISO numeric code of the country.',
    pool = pool(countries, function(c) return cname(c), c.numeric end),
    explain = function(i, o) return 'The numeric code of ' .. i .. ' is ' .. o .. '.' end })

  local currencies = by(load('4217'), 'alpha_3')
  add({ name = 'iso_currency_code_to_name', definition = 'Give the name of the currency with this ISO code.',
    pool = pool(currencies, function(c) return c.alpha_3, c.name end), domains = { 'Economics' },
    explain = function(i, o) return i .. ' is the code of the ' .. o .. '.' end })

  local languages = by(load('639-2'), 'alpha_2')
  add({ name = 'iso_language_to_code', definition = 'Give the two-letter ISO 639 code of the language.',
    pool = pool(languages, function(l) return (l.name:gsub(';.*$', '')), l.alpha_2 end), domains = { 'Linguistics' },
    explain = function(i, o) return 'The ISO 639 code of ' .. i .. ' is ' .. o .. '.' end })

  local scripts = by(load('15924'), 'alpha_4')
  add({ name = 'iso_script_code_to_name', definition = 'Give the writing system with this four-letter ISO 15924 code.',
    pool = pool(scripts, function(s) return s.alpha_4, s.name end), domains = { 'Linguistics' },
    explain = function(i, o) return i .. ' is the code of the ' .. o .. ' script.' end })

  -- subdivisions: the country of a province, state or region (one per name: names that occur in
  -- several countries are left out)
  local by_code = {}
  for _, c in ipairs(countries) do by_code[c.alpha_2] = c end
  local subs, count = {}, {}
  for _, s in ipairs(by(load('3166-2'), 'code')) do
    if not s.parent and by_code[s.code:sub(1, 2)] then
      subs[#subs + 1] = s
      count[s.name] = (count[s.name] or 0) + 1
    end
  end
  -- spread over countries: at most 3 per country, in code order
  local per, picked = {}, {}
  for _, s in ipairs(subs) do
    local cc = s.code:sub(1, 2)
    per[cc] = (per[cc] or 0) + 1
    if per[cc] <= 3 and count[s.name] == 1 and #s.name <= 40 then picked[#picked + 1] = s end
  end
  add({ name = 'iso_subdivision_to_country', definition = 'Give the country that the region belongs to.',
    pool = pool(picked, function(s) return s.name, names(by_code[s.code:sub(1, 2)]) end),
    explain = function(i, o) return i .. ' is a region of ' .. o .. '.' end })
  return tasks
end

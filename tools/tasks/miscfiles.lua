-- miscfiles.lua: geography look-ups from GNU miscfiles (Debian miscfiles, /usr/share/misc):
-- capitals (countries.gz), international dialling codes (inter.phone.gz), airports
-- (airport.gz) and cities (cities.dat.gz).
return function(L)
  local DIR = '/usr/share/misc'
  local PKG = 'miscfiles'
  local tasks = {}
  local add = L.adder(tasks, { family = 'miscfiles', package = PKG, source = 'GNU miscfiles',
    license = 'GPL-2+ (GNU miscfiles)', license_short = 'GPL-2+' },
    { category = 'Misc.', domains = { 'Countries' }, reasoning = {}, metric = 'exact_match' })
  local function records(file, nfields)
    local t = {}
    for _, line in ipairs(L.lines(L.need(DIR .. '/' .. file, PKG))) do
      if not line:match('^#') and line:match('%S') then
        local f = L.split(line, ':')
        if #f >= nfields then t[#t + 1] = f end
      end
    end
    return t
  end

  -- capitals: "Pretoria (official), Cape Town (legislative)" keeps each city as an answer
  local cap_pool, country_pool = {}, {}
  local capitals = records('countries.gz', 5)
  table.sort(capitals, function(a, b) return a[4] < b[4] end)
  local code_name = {}
  for _, f in ipairs(capitals) do
    local country, capital = L.trim(f[4]), L.trim(f[5])
    code_name[f[2]] = country
    if capital ~= '' then
      local outs = {}
      for c in (capital .. ','):gmatch('([^,]+),') do
        c = L.trim((c:gsub('%(.-%)', '')))
        if c ~= '' then outs[#outs + 1] = c end
      end
      cap_pool[#cap_pool + 1] = { input = country, outputs = outs }
      for _, c in ipairs(outs) do country_pool[#country_pool + 1] = { input = c, outputs = { country } } end
    end
  end
  add({ name = 'misc_country_to_capital', definition = 'Give the capital city of the country.', pool = cap_pool,
    explain = function(i, o) return o .. ' is the capital of ' .. i .. '.' end })
  add({ name = 'misc_capital_to_country', definition = 'Give the country whose capital is this city.', pool = country_pool,
    explain = function(i, o) return i .. ' is the capital of ' .. o .. '.' end })

  -- dialling codes (zone 1 is one entry for all of North America: left out)
  local phone = {}
  for _, f in ipairs(records('inter.phone.gz', 2)) do
    local code, country = L.trim(f[1]), L.trim(f[2])
    if code:match('^%d+$') and code ~= '1' then phone[#phone + 1] = { input = country, outputs = { code } } end
  end
  table.sort(phone, function(a, b) return a.input < b.input end)
  add({ name = 'misc_country_to_phone_code', definition = 'Give the international telephone code of the country.',
    pool = phone, explain = function(i, o) return 'Calls to ' .. i .. ' start with +' .. o .. '.' end })

  -- airports: the IATA code -> the city it serves (or the airport's name) and its country
  local airport_city, airport_country = {}, {}
  local airports = records('airport.gz', 5)
  table.sort(airports, function(a, b) return a[1] < b[1] end)
  for _, f in ipairs(airports) do
    local code, name, cc, city = L.trim(f[1]), L.trim(f[2]), L.trim(f[3]), L.trim(f[5])
    city = city:gsub(',.*$', '')
    if code:match('^%u%u%u$') then
      airport_city[#airport_city + 1] = { input = code, outputs = { city ~= '' and city or name } }
      if code_name[cc] then airport_country[#airport_country + 1] = { input = code, outputs = { code_name[cc] } } end
    end
  end
  add({ name = 'misc_airport_code_to_city', definition = 'Give the city served by the airport with this code.',
    pool = airport_city, domains = { 'Travel' },
    explain = function(i, o) return 'The airport ' .. i .. ' serves ' .. o .. '.' end })
  add({ name = 'misc_airport_code_to_country', definition = 'Give the country of the airport with this code.',
    pool = airport_country, domains = { 'Travel' },
    explain = function(i, o) return 'The airport ' .. i .. ' is in ' .. o .. '.' end })

  -- cities: the country of a city (names that occur in several countries are left out)
  local cities, seen = {}, {}
  local text = L.need(DIR .. '/cities.dat.gz', PKG)
  for rec in (text .. '//'):gmatch('(.-)\n//') do
    local name, country = rec:match('\nName%s*: ([^\n]-)%s*\n'), rec:match('\n Country%s*: ([^\n]-)%s*\n')
    -- most records give an ISO code (the UK as "UK"): answer with the country's name
    if country and country:match('^%u%u$') then country = code_name[country == 'UK' and 'GB' or country] or country end
    if name and country and name ~= '' and country ~= '' then
      if seen[name] and seen[name] ~= country then seen[name] = false
      elseif seen[name] == nil then seen[name] = country end
    end
  end
  for _, name in ipairs(L.sorted_keys(seen)) do
    if seen[name] then cities[#cities + 1] = { input = name, outputs = { seen[name] } } end
  end
  add({ name = 'misc_city_to_country', definition = 'Give the country the city is in.', pool = cities,
    explain = function(i, o) return i .. ' is a city in ' .. o .. '.' end })
  return tasks
end

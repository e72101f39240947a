-- build_corpus.lua: builds mtt's default pre-training corpus from Debian data packages.
--
--   luajit tools/corpus/build_corpus.lua [OUT_DIR] [--max-bytes N]
--   (also: mtt run tools/corpus/build_corpus.lua ...; default OUT_DIR build/data/corpus)
--
-- Reads only files installed by Debian packages (nothing is downloaded) and writes plain UTF-8
-- text, one file per source, documents separated by one blank line and no blank line inside a
-- document, so that a reader may split on "\n\n":
--   bible.txt     King James Bible, one chapter a document, one verse a line (bible-kjv's
--                 `bible` reader over bible-kjv-text's data)
--   fortunes.txt  fortune cookies, one a document (fortunes, fortunes-min)
--   jargon.txt    the Jargon File 4.4.7 glossary, one entry a document, paragraphs on one line
--                 (jargon-text)
--   wordnet.txt   WordNet 3.0 glosses with usage examples, "word, synonym (pos): gloss", one
--                 synset a line, 20 a document, about 2 MB (wordnet-base)
-- plus licenses/ (each package's copyright file) and MANIFEST (bytes and a checksum per file).
-- The output is deterministic: files are read in sorted order, no clock, no randomness.
-- --max-bytes N keeps at most N bytes of each source (whole documents), for quick tests.
-- Plain Lua (runs under luajit alone): no mtt module is needed.
-- JIT load forwarding off: Debian 12's LuaJIT miscompiles some loads from tables built inside
-- hot loops (see tools/mtt/main.c), and the corpus must be the same on every machine.
if jit and jit.opt then jit.opt.start('-fwd') end

local out_dir, max_bytes = 'build/data/corpus', math.huge
do
  local i, args = 1, arg or {}
  while args[i] do
    local a = args[i]
    if a == '--max-bytes' then
      max_bytes = tonumber(args[i + 1]) or error('build_corpus: --max-bytes needs a number')
      i = i + 2
    elseif a:sub(1, 2) == '--' then
      io.stderr:write('build_corpus: unknown option ' .. a .. ' (accepted: --max-bytes N)\n')
      os.exit(2)
    else
      out_dir, i = a, i + 1
    end
  end
end

local function fail(msg)
  io.stderr:write('build_corpus: ' .. msg .. '\n')
  os.exit(1)
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function read_file(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end

local function read_command(cmd, what)
  local p = io.popen(cmd .. ' 2>/dev/null', 'r')
  local s = p and p:read('*a')
  if p then p:close() end
  if not s or #s == 0 then fail(what .. ' produced no text (is its Debian package installed?)') end
  return s
end

local function need(path, package)
  if not read_file(path) then
    fail(string.format('%s is missing: install the Debian package %s (./build.sh deps)', path, package))
  end
end

local function trim(s) return (s:gsub('^%s+', ''):gsub('%s+$', '')) end

-- A writer that keeps whole documents up to max_bytes and never writes an empty one.
local function writer(path)
  local f = assert(io.open(path, 'wb'))
  local w = { bytes = 0, docs = 0 }
  function w.doc(text)
    text = text:gsub('\r', ''):gsub('\n%s*\n+', '\n'):gsub('^%s*\n', ''):gsub('%s+$', '')
    if text == '' then return true end
    local n = #text + (w.docs > 0 and 2 or 0)
    if w.bytes + n > max_bytes then return false end
    if w.docs > 0 then f:write('\n\n') end
    f:write(text)
    w.bytes, w.docs = w.bytes + n, w.docs + 1
    return true
  end
  function w.close()
    if w.docs > 0 then f:write('\n'); w.bytes = w.bytes + 1 end
    f:close()
  end
  return w
end

-- ---- sources ----
local function bible(w)
  need('/usr/lib/bible.data', 'bible-kjv-text')
  -- -l with a wide line keeps each verse on one line; stdin closed so it never prompts
  local text = read_command('bible -l100000 gen1:1-rev22:21 </dev/null', 'bible (bible-kjv)')
  local chapter = {}
  local function flush()
    if #chapter > 0 and not w.doc(table.concat(chapter, '\n')) then return false end
    chapter = {}
    return true
  end
  for line in (text .. '\n'):gmatch('([^\n]*)\n') do
    local verse = line:match('^%s+%d+%s+(.*)$')
    if verse then
      chapter[#chapter + 1] = trim(verse)
    elseif line:match('%S') then -- a heading: "Genesis 1"
      if not flush() then return end
      chapter[1] = trim(line)
    end
  end
  flush()
end

local function fortunes(w)
  local dir = '/usr/share/games/fortunes'
  local names = {}
  local p = io.popen('ls ' .. shell_quote(dir) .. ' 2>/dev/null')
  for name in p:lines() do
    -- skip the index files (.dat), the .u8 links and the pictures (ASCII art is not language)
    if not name:match('%.') and name ~= 'ascii-art' and name ~= 'art' then names[#names + 1] = name end
  end
  p:close()
  if #names == 0 then fail(dir .. ' has no fortune files: install the Debian package fortunes') end
  table.sort(names)
  for _, name in ipairs(names) do
    local text = read_file(dir .. '/' .. name) or ''
    for cookie in (text .. '\n%\n'):gmatch('(.-)\n%%\n') do
      if not w.doc(cookie) then return end
    end
  end
end

local function jargon(w)
  local path = '/usr/share/doc/jargon-text/jargon.txt.gz'
  need(path, 'jargon-text')
  local text = read_command('gzip -dc ' .. shell_quote(path), 'gzip -dc jargon.txt.gz')
  -- the glossary starts at its first entry ("   :(TM):"); before it is a table of contents
  local start = text:find('\n   :[^\n]-:')
  if not start then fail('jargon.txt: no glossary entries found') end
  text = text:sub(start + 1)
  local entry, para = {}, {}
  local function end_para()
    if #para > 0 then entry[#entry + 1] = table.concat(para, ' ') end
    para = {}
  end
  local function end_entry()
    end_para()
    local ok = #entry == 0 or w.doc(table.concat(entry, '\n'))
    entry = {}
    return ok
  end
  for line in (text .. '\n'):gmatch('([^\n]*)\n') do
    local s = trim(line)
    if s:match('^:[^:]+:') then -- a new entry: ":word: n."
      if not end_entry() then return end
      para[1] = s
      end_para()
    elseif s == '' then
      end_para()
    elseif not s:match('^═+$') then
      para[#para + 1] = s
    end
  end
  end_entry()
end

-- WordNet has 117,000 synsets (12 MB of glosses); the corpus keeps those with a usage example
-- (sentences, not only definitions), taken from the four parts of speech in turn so that the
-- mix is balanced, up to WORDNET_BYTES, 20 glosses a document.
local WORDNET_BYTES = 2000000
local function wordnet(w)
  local pos_names = { noun = 'noun', verb = 'verb', adj = 'adjective', adv = 'adverb' }
  local lists = {}
  for _, pos in ipairs({ 'noun', 'verb', 'adj', 'adv' }) do
    local path = '/usr/share/wordnet/data.' .. pos
    need(path, 'wordnet-base')
    local list = {}
    for line in io.lines(path) do
      if line:sub(1, 2) ~= '  ' then -- the licence header lines start with two spaces
        -- offset lex_filenum ss_type w_cnt (word lex_id)... | gloss
        local head, gloss = line:match('^(.-)%s*|%s*(.-)%s*$')
        if head and gloss:find('"', 1, true) then
          local fields = {}
          for f in head:gmatch('%S+') do fields[#fields + 1] = f end
          local words = {}
          for k = 1, tonumber(fields[4], 16) or 0 do
            words[k] = (fields[3 + 2 * k] or ''):gsub('%(%a+%)$', ''):gsub('_', ' ')
          end
          list[#list + 1] = string.format('%s (%s): %s', table.concat(words, ', '), pos_names[pos], gloss)
        end
      end
    end
    lists[#lists + 1] = list
  end
  local doc, bytes = {}, 0
  for i = 1, math.huge do
    local any = false
    for _, list in ipairs(lists) do
      local l = list[i]
      if l then
        any = true
        if bytes + #l + 1 > WORDNET_BYTES then any = false; break end
        doc[#doc + 1], bytes = l, bytes + #l + 1
        if #doc == 20 then
          if not w.doc(table.concat(doc, '\n')) then return end
          doc = {}
        end
      end
    end
    if not any then break end
  end
  w.doc(table.concat(doc, '\n'))
end

-- ---- main ----
local sources = {
  { file = 'bible.txt', build = bible, package = 'bible-kjv-text',
    licence = 'public domain (King James Version, 1611); the bible reader is GPL-2+' },
  { file = 'fortunes.txt', build = fortunes, package = 'fortunes',
    licence = 'BSD (fortune-mod); the cookie files are collected quotations' },
  { file = 'jargon.txt', build = jargon, package = 'jargon-text',
    licence = 'public domain (The Jargon File 4.4.7, Eric S. Raymond)' },
  { file = 'wordnet.txt', build = wordnet, package = 'wordnet-base',
    licence = 'WordNet 3.0 licence (permissive; keep the notice in licenses/wordnet-base)' },
}

if os.execute('mkdir -p ' .. shell_quote(out_dir .. '/licenses')) ~= 0 then fail('cannot create ' .. out_dir) end

-- FNV-1a 32-bit over the file, so that two builds can be compared from MANIFEST alone
local bit = require 'bit'
local function fnv1a(s)
  local h = 0x811c9dc5
  for i = 1, #s do h = bit.tobit(bit.bxor(h, s:byte(i)) * 16777619) end
  return bit.tohex(h)
end

local manifest = {}
local total = 0
for _, src in ipairs(sources) do
  local tmp = out_dir .. '/' .. src.file .. '.tmp'
  local w = writer(tmp)
  src.build(w)
  w.close()
  if w.docs == 0 then fail(src.file .. ': no text') end
  assert(os.rename(tmp, out_dir .. '/' .. src.file))
  local copyright = read_file('/usr/share/doc/' .. src.package .. '/copyright')
  if copyright then
    local f = assert(io.open(out_dir .. '/licenses/' .. src.package, 'wb'))
    f:write(copyright)
    f:close()
  end
  local data = read_file(out_dir .. '/' .. src.file)
  manifest[#manifest + 1] = string.format('%s\t%d bytes\t%d documents\tfnv1a %s\t%s\t%s', src.file, #data,
    w.docs, fnv1a(data), src.package, src.licence)
  total = total + #data
  print(string.format('build_corpus: %-13s %9d bytes %7d documents', src.file, #data, w.docs))
end
local f = assert(io.open(out_dir .. '/MANIFEST', 'wb'))
f:write(table.concat(manifest, '\n') .. '\n')
f:close()
print(string.format('build_corpus: %d bytes in %s', total, out_dir))

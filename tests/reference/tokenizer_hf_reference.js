#!/usr/bin/env node
// Reference for tests/lua/test_tokenizer.lua: Hugging Face's tokenizers library (the Rust
// implementation, through its Node bindings, npm package `tokenizers`) loads a tokenizer.json
// that mtt wrote and encodes strings with it, and decodes mtt's ids back to text.
// usage: node tokenizer_hf_reference.js PACKAGE_DIR TOKENIZER.json STRINGS.json OUT.json
// STRINGS.json is a JSON array of strings; OUT.json gets {ids: [[...], ...], text: [...]},
// text[i] being the decoding of ids[i].
'use strict';
const fs = require('fs');
const path = require('path');
const [pkg, tokenizerFile, input, output] = process.argv.slice(2);
const { Tokenizer } = require(path.resolve(pkg));

(async () => {
  const tok = Tokenizer.fromFile(tokenizerFile);
  const strings = JSON.parse(fs.readFileSync(input, 'utf8'));
  const ids = [];
  const text = [];
  for (const s of strings) {
    const e = await tok.encode(s, null, { addSpecialTokens: false });
    ids.push(Array.from(e.getIds()));
    text.push(await tok.decode(Array.from(e.getIds()), false));
  }
  fs.writeFileSync(output, JSON.stringify({ ids, text }));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});

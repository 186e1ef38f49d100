// Part of `npm run build`: writes dist/openapi.json, openapi.yaml parsed once with
// the SHA-256 of its text, so that the server need not parse the YAML at every
// start (src/http/contract.ts uses it only while the hash matches).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';
import { contractDigest, PARSED_CONTRACT_FILE } from '../dist/http/contract.js';

const yamlText = readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8');
const target = new URL(`../${PARSED_CONTRACT_FILE}`, import.meta.url);
mkdirSync(new URL('.', target), { recursive: true });
writeFileSync(target, JSON.stringify({ sha256: contractDigest(yamlText), document: parse(yamlText) }));

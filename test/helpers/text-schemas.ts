// Vitest setup: the tests use the core directly, with .proto text schemas, as
// the full entries (src/index.ts, src/browser.ts) let them.
import { parseProtoFile } from '../../src/core/codec/proto-parse.js'
import { useProtoParser } from '../../src/core/codec/schema.js'

useProtoParser(parseProtoFile)

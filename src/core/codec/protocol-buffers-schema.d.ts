// The parser ships no types; these describe only what proto-parse.ts reads.

declare module 'protocol-buffers-schema/parse.js' {
  export interface PbsField {
    name: string
    type: string
    tag: number
    map: { from: string; to: string } | null
    oneof: string | null
    required: boolean
    repeated: boolean
    options: Record<string, unknown>
  }
  export interface PbsEnum {
    name: string
    values: Record<string, { value: number; options: Record<string, unknown> }>
    options: Record<string, unknown>
  }
  export interface PbsMessage {
    name: string
    enums: PbsEnum[]
    messages: PbsMessage[]
    fields: PbsField[]
    options: Record<string, unknown>
    extensions?: { from: number; to: number } | null
  }
  export interface PbsSchema {
    /** 3 when the file has no syntax line: the caller must correct that. */
    syntax: 2 | 3
    package: string | null
    imports: string[]
    enums: PbsEnum[]
    messages: PbsMessage[]
    options: Record<string, unknown>
  }
  // A Uint8Array would be stringified as "1,2,3": decode text first.
  function parse(source: string): PbsSchema
  export default parse
}

declare module 'protocol-buffers-schema/tokenize.js' {
  function tokenize(source: string): string[]
  export default tokenize
}

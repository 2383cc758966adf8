/**
 * The schema `hypem --example-schema` prints: the seed's CLI fixture, plus one
 * message with the types the NDJSON mapping converts. It lives in the code so
 * an installed package has it without a file lookup.
 */
export const EXAMPLE_SCHEMA = `// hypem's example schema (hypem --example-schema > messages.proto).
// No syntax line: proto2, as protoc reads it.

message Hello {
  required string from = 1;
  optional string message = 2;
}

message Blob {
  optional bytes data = 1;
  optional int64 big = 2;
  optional double ratio = 3;
}
`

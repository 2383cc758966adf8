/**
 * `hypem`: the HyperEmitter command line (package.json "bin"). See
 * src/node/cli/main.ts, or run `hypem --help`.
 */
import { main } from './node/cli/main.js'

void main(process.argv.slice(2))

// Checked by `npm run typecheck`, never run: the browser entry's own db is
// accepted wherever a db goes, and its type claims only the API it has.
import { HyperEmitter, indexedDb } from '../../src/lean.js'
import { AddressSchema } from '../../src/gen/hyperemitter/v1/peer_pb.js'

export function typeChecks(): void {
  const db = indexedDb('app')
  HyperEmitter(db, [AddressSchema])
  HyperEmitter({ db, schema: [AddressSchema] })
  void db.sublevel('mine', { keyEncoding: 'utf8', valueEncoding: 'view' }).get('key')
  // @ts-expect-error keys() is abstract-level's; the entry's db does not have it
  void db.keys()
}

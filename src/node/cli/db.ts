/**
 * hypem's --db: a LevelDB through classic-level, an optional peer dependency
 * (6 MB of native prebuilds library users need not carry), loaded only when
 * --db asks for it.
 */
import { mkdirSync } from 'node:fs'
import type { ClassicLevel } from 'classic-level'
import { ErrorCodes, HyperEmitterError } from '../../core/errors.js'

export type LevelDb = ClassicLevel<Uint8Array, Uint8Array>

/** classic-level's constructor; rejects NOT_SUPPORTED, saying what to install, when it is missing. */
export async function loadClassicLevel(): Promise<typeof ClassicLevel> {
  try {
    return (await import('classic-level')).ClassicLevel
  } catch (cause) {
    if ((cause as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw cause
    throw new HyperEmitterError(
      ErrorCodes.NOT_SUPPORTED,
      '--db needs classic-level, which is not installed: npm install -g classic-level (beside a global hyperemitter) or npm install classic-level',
      { cause },
    )
  }
}

/** Open (creating if missing) the LevelDB directory `path`. */
export async function openLevelDb(path: string): Promise<LevelDb> {
  const ClassicLevel = await loadClassicLevel()
  mkdirSync(path, { recursive: true })
  const db: LevelDb = new ClassicLevel<Uint8Array, Uint8Array>(path, { keyEncoding: 'view', valueEncoding: 'view' })
  try {
    await db.open()
  } catch (err) {
    await db.close().catch(() => {})
    throw err
  }
  return db
}

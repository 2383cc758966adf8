import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ErrorCodes } from '../src/index.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

describe('README', () => {
  it('documents every error code', () => {
    const missing = Object.values(ErrorCodes).filter((code) => !readme.includes(`\`${code}\``))
    expect(missing).toEqual([])
  })

  it('gives the set-up commands that package.json can run', () => {
    const scripts = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).scripts
    expect(readme).toContain('npm ci && npm start')
    expect(readme).toContain('npm ci && npm test')
    expect(scripts.start).toBeTruthy()
    expect(scripts.test).toBeTruthy()
  })
})

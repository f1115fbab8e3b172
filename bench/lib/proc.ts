import { readFile } from 'node:fs/promises'

/**
 * CPU seconds (user + system) of this process's children that it has waited for, from
 * /proc/self/stat (cutime + cstime, in USER_HZ = 100): the difference around a tool run is that
 * run's CPU, when nothing else of this process ends meanwhile.
 */
export async function childrenCpuSeconds (): Promise<number> {
  const fields = (await readFile('/proc/self/stat', 'utf8')).split(') ')[1]?.split(' ') ?? []
  return (Number(fields[13] ?? 0) + Number(fields[14] ?? 0)) / 100
}

import { execa } from 'execa'

/**
 * Where each track of a file starts, read by ffprobe on its own (the first minute's packets,
 * discarded ones skipped unless everyPacket; ffprobe's stream start for a track with none that early): an oracle
 * independent of probeMedia's packet pass, which the merge and the fidelity check use.
 */
export async function ffprobeTrackStarts (path: string, o: { everyPacket?: boolean } = {}): Promise<Array<{ type: string, start: number }>> {
  const r = await execa('ffprobe', ['-v', 'error', '-read_intervals', '%+60',
    '-show_entries', 'stream=index,codec_type,start_time:stream_disposition=attached_pic:packet=stream_index,pts_time,flags', '-of', 'json', path])
  const parsed = JSON.parse(r.stdout) as {
    streams?: Array<{ index?: number, codec_type?: string, start_time?: string, disposition?: { attached_pic?: number } }>
    packets?: Array<{ stream_index?: number, pts_time?: string, flags?: string }>
  }
  const first = new Map<number, number>()
  for (const p of parsed.packets ?? []) {
    const t = Number(p.pts_time)
    // Every packet (everyPacket): AAC priming an edit list discards still opens the track in a remux.
    if (p.stream_index === undefined || p.pts_time === undefined || !Number.isFinite(t) || (o.everyPacket !== true && p.flags?.includes('D') === true)) continue
    first.set(p.stream_index, Math.min(first.get(p.stream_index) ?? Infinity, t))
  }
  return (parsed.streams ?? [])
    .filter(x => x.codec_type !== 'attachment' && x.disposition?.attached_pic !== 1)
    .map(x => ({ type: x.codec_type ?? 'data', start: first.get(x.index ?? -1) ?? Number(x.start_time) }))
    .filter(x => Number.isFinite(x.start))
}

// Writes as the viewer `test-token` stands for (user 1), each followed by a
// read that must see it: the note created with its title, the new title
// after an update, null after a delete, and the newest of the viewer's notes
// at least as new as the one just created. A read that does not is a stale
// read (the `stale_reads` counter, which the writes scenario requires to stay
// at zero) and a failed request. Behind a load balancer naming the server
// (`x-served-by`), `read_other_server` says how often the read was answered
// by another server than the write.

import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { data, pickUniform } from './data.js';
import { failures, lastServedBy, staleReads } from './graphql.js';
import { createNote, deleteNote, newestOwnNote, readNote, updateNote } from './queries.js';

// The notes this VU created and has not deleted; VUs never touch each
// other's, so every expectation below is exact.
const own = [];

/** Of the reads after a write, the share another server than the write's answered. */
const readOtherServer = new Rate('read_other_server');

/**
 * Records whether the read just made went to another server than `wrote`;
 * returns `same`, `other` or `unknown` (no load balancer naming servers).
 */
function crossed(wrote) {
  const read = lastServedBy();
  if (wrote === undefined || read === undefined) {
    return 'unknown';
  }
  readOtherServer.add(read !== wrote);
  return read === wrote ? 'same' : 'other';
}

function fresh(name, ok, served = 'unknown') {
  if (!ok) {
    staleReads.add(1, { query: name, served });
    failures.add(true, { query: 'readAfterWrite' });
  }
  check(null, { [`read after ${name} sees the write`]: () => ok });
  return ok;
}

function title() {
  return `load test ${__VU}-${__ITER}-${Date.now()}`;
}

/** Creates a note and reads it back, by id and as the newest of the viewer's notes. */
export function createAndRead() {
  const t = title();
  const tags = [pickUniform(data.tags), pickUniform(data.tags)];
  const created = createNote(t, 'Written by the k6 writes scenario; removed after the run.', tags);
  if (!created) {
    return;
  }
  const wrote = lastServedBy();
  const id = created.createNote.id;
  own.push(id);
  const read = readNote(id);
  let served = crossed(wrote);
  fresh('createNote', read !== null && read.note !== null && read.note.title === t, served);
  const newest = newestOwnNote();
  served = crossed(wrote);
  fresh('createNote (list)', newest !== null && newest.me.notes.length > 0 && Number(newest.me.notes[0].id) >= Number(id), served);
}

/** Renames one of this VU's notes and reads the new title back. */
export function updateAndRead() {
  const id = pickUniform(own);
  const t = title();
  if (!updateNote(id, t)) {
    return;
  }
  const wrote = lastServedBy();
  const read = readNote(id);
  const served = crossed(wrote);
  fresh('updateNote', read !== null && read.note !== null && read.note.title === t, served);
}

/** Deletes one of this VU's notes and checks it is gone. */
export function deleteAndRead() {
  const id = own.splice(Math.floor(Math.random() * own.length), 1)[0];
  if (!deleteNote(id)) {
    return;
  }
  const wrote = lastServedBy();
  const read = readNote(id, { deleted: true });
  const served = crossed(wrote);
  fresh('deleteNote', read !== null && read.note === null, served);
}

/** One write: create half the time (always when this VU owns no note), else update 30%, delete 20%. */
export function writeRequest() {
  const r = Math.random();
  if (own.length === 0 || r < 0.5) {
    createAndRead();
  } else if (r < 0.8) {
    updateAndRead();
  } else {
    deleteAndRead();
  }
}

// Preloaded (node --require) into a server that bench/profile.ts profiles: the CPU profiler is
// started and stopped over IPC, so start-up (module loading, tsx compiling) and warm-up stay out
// of the profile. {type:'profile-start'} → {type:'profile-started'}; {type:'profile-stop', file}
// writes the .cpuprofile and answers {type:'profile-stopped'}.
const { Session } = require('node:inspector');
const { writeFileSync } = require('node:fs');

if (process.send) {
  const session = new Session();
  session.connect();
  const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  process.on('message', async (msg) => {
    if (msg && msg.type === 'profile-start') {
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: 200 });
      await post('Profiler.start');
      process.send({ type: 'profile-started', id: msg.id });
    } else if (msg && msg.type === 'profile-stop') {
      const { profile } = await post('Profiler.stop');
      writeFileSync(msg.file, JSON.stringify(profile));
      process.send({ type: 'profile-stopped', id: msg.id });
    }
  });
}

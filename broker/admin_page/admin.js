/* Herald admin page: the dashboard's refresh. Served by the broker (no inline
   script: the CSP forbids it); it talks only to this origin.
   Every few seconds it fetches /admin/api/metrics (the metrics verb's JSON),
   writes the figures into the elements marked data-k="KEY" (as text, never as
   HTML), and computes the ingest and delivery rates between two samples. */
'use strict';

(function () {
  var root = document.getElementById('dashboard');
  if (!root) {
    return;
  }
  var every = parseInt(root.getAttribute('data-refresh-ms'), 10) || 2000;
  var cells = {};
  var previous = null;

  Array.prototype.forEach.call(document.querySelectorAll('[data-k]'), function (el) {
    cells[el.getAttribute('data-k')] = el;
  });

  function set(key, text, bad) {
    var el = cells[key];
    if (!el) {
      return;
    }
    el.textContent = String(text);
    if (bad !== undefined) {
      el.classList.toggle('bad', !!bad);
      el.classList.toggle('good', bad === false && key === 'broker.journal');
    }
  }

  function duration(ms) {
    var s = Math.floor(ms / 1000);
    if (ms < 1000) { return Math.max(0, Math.round(ms)) + ' ms'; }
    if (s < 60) { return (ms / 1000).toFixed(1) + ' s'; }
    if (s < 3600) { return Math.floor(s / 60) + ' min ' + String(s % 60).padStart(2, '0') + ' s'; }
    if (s < 86400) { return Math.floor(s / 3600) + ' h ' + String(Math.floor(s % 3600 / 60)).padStart(2, '0') + ' min'; }
    return Math.floor(s / 86400) + ' d ' + String(Math.floor(s % 86400 / 3600)).padStart(2, '0') + ' h';
  }

  function bytes(n) {
    var units = ['KiB', 'MiB', 'GiB', 'TiB'];
    if (n < 1024) { return Math.max(0, n) + ' B'; }
    var v = n / 1024, u = 0;
    while (v >= 1024 && u + 1 < units.length) { v /= 1024; u++; }
    return v.toFixed(1) + ' ' + units[u];
  }

  function rate(now, before, seconds) {
    var r = (now - before) / seconds;
    return r >= 100 ? Math.round(r).toString() : r.toFixed(1);
  }

  function show(m) {
    var metrics = m.metrics || {}, acked = metrics.acked || {}, broker = m.broker || {};
    var done = 0, failed = 0;
    (metrics.deliveries || []).forEach(function (d) { done += d.done || 0; failed += d.failed || 0; });
    var sample = { t: performance.now(), ingest: (acked['new'] || 0) + (acked.duplicate || 0), delivered: done };
    if (previous && sample.t > previous.t) {
      var seconds = (sample.t - previous.t) / 1000;
      set('rate.ingest', rate(sample.ingest, previous.ingest, seconds));
      set('rate.delivery', rate(sample.delivered, previous.delivered, seconds));
    }
    previous = sample;
    set('received', metrics.received || 0);
    set('acked.new', acked['new'] || 0);
    set('acked.duplicate', acked.duplicate || 0);
    set('deliveries.done', done);
    set('deliveries.failed', failed);
    set('broker.uptime', duration(broker.uptime_ms || 0));
    set('broker.store_bytes', bytes((broker.journal_bytes || 0) + (broker.index_bytes || 0)));
    set('broker.journal', broker.store_full ? 'full: new events are refused (507)' : 'taking events', !!broker.store_full);
    set('broker.events', broker.events || 0);
    set('broker.index_lag', bytes(broker.index_lag_bytes || 0));
    (m.channels || []).forEach(function (c) {
      var p = 'ch.' + c.name + '.';
      ['pending', 'in_flight', 'retrying', 'done'].forEach(function (k) { set(p + k, c[k] || 0); });
      set(p + 'dead', c.dead || 0, (c.dead || 0) > 0);
      set(p + 'workers', c.workers || 0, (c.workers || 0) === 0);
      set(p + 'oldest', duration(c.oldest_pending_age_ms || 0));
    });
    set('updated', 'updated ' + new Date().toLocaleTimeString() + ', every ' + every / 1000 + ' s');
  }

  function tick() {
    fetch('/admin/api/metrics', { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) {
        if (r.status === 401) {
          window.location.assign('/admin/login');
          throw new Error('session ended');
        }
        if (!r.ok) {
          throw new Error('HTTP ' + r.status);
        }
        return r.json();
      })
      .then(show)
      .catch(function (e) {
        set('updated', 'the broker did not answer (' + e.message + '); trying again');
      })
      .then(function () {
        window.setTimeout(tick, every);
      });
  }

  tick();
}());

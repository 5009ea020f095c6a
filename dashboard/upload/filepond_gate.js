/* FilePond 4 (the drop zones of the New project form, Panel's FileDropper) starts a painter when its script loads:
 * a loop that asks for every animation frame, 60 a second, for as long as the page lives, whether or not a drop
 * zone exists. An idle dashboard tab then costs about 9% of a core (renderer and compositor) on a 2-core machine.
 * This script, loaded after FilePond's, holds the painter's next frame back while no drop zone exists and gives it
 * back when FilePond makes one. Nothing changes where the painter cannot be told apart (the loop runs, as before). */
(function () {
  "use strict";
  var pond = window.FilePond;
  if (!pond || typeof pond.create !== "function" || window.__latentInspectorFilePondGate) return;
  var parked = null;  // the painter's callback, while it waits for a drop zone
  var gate = {zones: 0};
  Object.defineProperty(gate, "parked", {enumerable: true, get: function () { return parked !== null; }});
  window.__latentInspectorFilePondGate = gate;
  var ask = window.requestAnimationFrame.bind(window);
  var seen = new WeakMap();  // callback -> whether it is FilePond's painter
  function isPainter(callback) {
    if (typeof callback !== "function") return false;
    var known = seen.get(callback);
    if (known === undefined) {
      known = /\.readers\.forEach\(/.test(Function.prototype.toString.call(callback));
      seen.set(callback, known);
    }
    return known;
  }
  window.requestAnimationFrame = function (callback) {
    if (gate.zones === 0 && isPainter(callback)) {
      parked = callback;
      return 0;
    }
    return ask(callback);
  };
  var create = pond.create;
  pond.create = function () {
    var app = create.apply(pond, arguments);
    if (!app || typeof app.destroy !== "function") return app;
    gate.zones += 1;
    if (parked !== null) {
      var painter = parked;
      parked = null;
      ask(painter);
    }
    var destroy = app.destroy, gone = false;
    app.destroy = function () {
      if (!gone) { gone = true; gate.zones = Math.max(0, gate.zones - 1); }
      return destroy.apply(app, arguments);
    };
    return app;
  };
})();

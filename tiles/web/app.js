// roadhex web map: coverage freshness, capture sequences, frames and map features from the node's
// vector tiles, and the nearest published frame on click. Plain script, no build step; it needs
// MapLibre GL JS (UMD, /web/maplibre-gl.js) loaded first and makes no request outside this origin.
(function () {
  "use strict";

  // Frames within this many pixels of a click are taken from the rendered tiles.
  const CLICK_PX = 12;
  // Otherwise the server is asked for the nearest frame within this radius.
  const QUERY_RADIUS_M = 100;

  // Freshness 0 (just mapped) → 1 (fully refilled).
  const FRESHNESS_RAMP = [0, "#d7301f", 0.25, "#fc8d59", 0.5, "#fee08b", 0.75, "#91cf60", 1, "#1a9850"];
  const freshness = ["to-number", ["get", "freshness"], 0];

  window.roadhexReady = false;
  window.roadhexTileRequests = 0;

  const style = {
    version: 8,
    sources: {
      coverage: { type: "vector", url: "/tiles/coverage.json" },
      sequences: { type: "vector", url: "/tiles/sequences.json" },
      frames: { type: "vector", url: "/tiles/frames.json" },
      features: { type: "vector", url: "/tiles/features.json" },
      selected: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
    },
    layers: [
      { id: "background", type: "background", paint: { "background-color": "#eef0f2" } },
      {
        id: "coverage-fill",
        type: "fill",
        source: "coverage",
        "source-layer": "coverage",
        paint: {
          "fill-color": ["interpolate", ["linear"], freshness, ...FRESHNESS_RAMP],
          "fill-opacity": 0.55,
          "fill-antialias": false,
        },
      },
      {
        id: "coverage-outline",
        type: "line",
        source: "coverage",
        "source-layer": "coverage",
        minzoom: 14,
        paint: {
          "line-color": ["interpolate", ["linear"], freshness, 0, "#8f1d12", 0.5, "#8a6d1d", 1, "#0f5c2f"],
          "line-opacity": 0.6,
          "line-width": ["interpolate", ["linear"], ["zoom"], 14, 0.3, 18, 1],
        },
      },
      {
        id: "sequences-line",
        type: "line",
        source: "sequences",
        "source-layer": "sequences",
        minzoom: 6,
        layout: { "line-cap": "round", "line-join": "round" },
        paint: {
          "line-color": "#2563eb",
          "line-opacity": 0.8,
          "line-width": ["interpolate", ["linear"], ["zoom"], 6, 1, 14, 2, 18, 4],
        },
      },
      {
        id: "features-circle",
        type: "circle",
        source: "features",
        "source-layer": "features",
        minzoom: 14,
        paint: {
          "circle-color": "#c026d3",
          "circle-radius": ["interpolate", ["linear"], ["zoom"], 14, 3, 18, 7],
          "circle-stroke-color": "#ffffff",
          "circle-stroke-width": 1,
        },
      },
      {
        id: "frames-circle",
        type: "circle",
        source: "frames",
        "source-layer": "frames",
        minzoom: 14,
        paint: {
          "circle-color": "#0891b2",
          "circle-radius": ["interpolate", ["linear"], ["zoom"], 14, 2, 18, 5],
          "circle-stroke-color": "#ffffff",
          "circle-stroke-width": 0.75,
        },
      },
      {
        id: "selected-frame",
        type: "circle",
        source: "selected",
        paint: {
          "circle-color": "rgba(0, 0, 0, 0)",
          "circle-radius": 9,
          "circle-stroke-color": "#111827",
          "circle-stroke-width": 2.5,
        },
      },
    ],
  };

  const hasHash = /^#\d+(\.\d+)?\/-?\d+(\.\d+)?\/-?\d+(\.\d+)?/.test(location.hash);

  const map = new maplibregl.Map({
    container: "map",
    style: style,
    center: [0, 20],
    zoom: 1,
    hash: true,
    attributionControl: false,
    transformRequest: function (url, resourceType) {
      if (resourceType === "Tile" && url.indexOf("/tiles/") !== -1) {
        window.roadhexTileRequests += 1;
      }
      return { url: url };
    },
  });
  window.roadhexMap = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: true }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
  map.addControl(new maplibregl.AttributionControl({ compact: true, customAttribution: "roadhex contributors" }));

  map.once("idle", function () {
    window.roadhexReady = true;
  });

  // Without a #zoom/lat/lon hash, start where the coverage is (TileJSON center, else bounds).
  let userMoved = false;
  map.on("movestart", function (e) { if (e.originalEvent) userMoved = true; });
  if (!hasHash) {
    fetch("/tiles/coverage.json")
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (tj) {
        if (!tj || userMoved) return;
        if (Array.isArray(tj.bounds) && tj.bounds.length === 4 && tj.bounds[0] < tj.bounds[2]) {
          map.fitBounds([[tj.bounds[0], tj.bounds[1]], [tj.bounds[2], tj.bounds[3]]], { padding: 40, maxZoom: 16, animate: false });
        } else if (Array.isArray(tj.center) && tj.center.length >= 2) {
          map.jumpTo({ center: [tj.center[0], tj.center[1]], zoom: tj.center.length > 2 ? tj.center[2] : 12 });
        }
      })
      .catch(function () { /* an empty node has no coverage yet */ });
  }

  // ---- side panel ---------------------------------------------------------------------------

  const panel = document.getElementById("panel-body");

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function details(rows) {
    const dl = el("dl");
    for (const [k, v] of rows) {
      if (v === undefined || v === null || v === "") continue;
      dl.appendChild(el("dt", null, k));
      dl.appendChild(el("dd", null, String(v)));
    }
    return dl;
  }

  function isoFromUnix(s) {
    const n = Number(s);
    return Number.isFinite(n) ? new Date(n * 1000).toISOString().replace(".000Z", "Z") : undefined;
  }

  function fmtHeading(h) {
    const n = Number(h);
    return h === undefined || h === null || !Number.isFinite(n) ? undefined : n.toFixed(0) + "°";
  }

  function coverageAt(point) {
    const cells = map.queryRenderedFeatures(point, { layers: ["coverage-fill"] });
    if (!cells.length) return null;
    const p = cells[0].properties;
    const f = Number(p.freshness);
    return details([
      ["cell", p.h3],
      ["freshness", Number.isFinite(f) ? f.toFixed(2) : undefined],
      ["last captured", isoFromUnix(p.last_captured)],
      ["frames", p.frames],
      ["contributors", p.contributors],
      ["cells", p.cells],
    ]);
  }

  function featuresNear(point) {
    const box = [[point.x - CLICK_PX, point.y - CLICK_PX], [point.x + CLICK_PX, point.y + CLICK_PX]];
    const found = map.queryRenderedFeatures(box, { layers: ["features-circle"] });
    if (!found.length) return null;
    const p = found[0].properties;
    const c = Number(p.confidence);
    return details([
      ["feature", p.id],
      ["class", p.class],
      ["first seen", isoFromUnix(p.first_seen)],
      ["last seen", isoFromUnix(p.last_seen)],
      ["observations", p.observations],
      ["confidence", Number.isFinite(c) ? c.toFixed(2) : undefined],
    ]);
  }

  // frame = {id, time (display string), heading, capture_id, lngLat}
  function showFrame(frame, extras) {
    panel.className = "";
    panel.replaceChildren();
    if (frame) {
      const img = el("img", { id: "frame-image", "data-frame-id": frame.id, alt: "frame " + frame.id, src: "/v1/frames/" + encodeURIComponent(frame.id) + ".jpg" });
      img.addEventListener("error", function () {
        img.setAttribute("data-error", "1");
        img.after(el("div", { id: "frame-error", class: "empty" }, "image unavailable"));
      });
      panel.appendChild(img);
      panel.appendChild(details([
        ["frame", frame.id],
        ["time", frame.time],
        ["heading", fmtHeading(frame.heading)],
        ["capture", frame.capture_id],
      ]));
      map.getSource("selected").setData({
        type: "FeatureCollection",
        features: frame.lngLat ? [{ type: "Feature", geometry: { type: "Point", coordinates: frame.lngLat }, properties: {} }] : [],
      });
    } else {
      panel.appendChild(el("div", { id: "frame-none", class: "empty" }, "no frame near here"));
      map.getSource("selected").setData({ type: "FeatureCollection", features: [] });
    }
    for (const x of extras) if (x) panel.appendChild(x);
  }

  function nearestRenderedFrame(point) {
    const box = [[point.x - CLICK_PX, point.y - CLICK_PX], [point.x + CLICK_PX, point.y + CLICK_PX]];
    let best = null;
    for (const f of map.queryRenderedFeatures(box, { layers: ["frames-circle"] })) {
      if (!f.geometry || f.geometry.type !== "Point") continue;
      const q = map.project(f.geometry.coordinates);
      const d = Math.hypot(q.x - point.x, q.y - point.y);
      if (d <= CLICK_PX && (!best || d < best.d)) best = { d: d, f: f };
    }
    if (!best) return null;
    const p = best.f.properties;
    return { id: p.id, time: isoFromUnix(p.time), heading: p.heading, capture_id: p.capture_id, lngLat: best.f.geometry.coordinates };
  }

  let clickSeq = 0;
  map.on("click", function (e) {
    const seq = ++clickSeq;
    const extras = [featuresNear(e.point), coverageAt(e.point)];
    const rendered = nearestRenderedFrame(e.point);
    if (rendered) {
      showFrame(rendered, extras);
      return;
    }
    panel.className = "hint";
    panel.textContent = "looking for a frame…";
    fetch("/v1/query/frames", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/geo+json, application/json" },
      body: JSON.stringify({ point: [e.lngLat.lng, e.lngLat.lat], radius_m: QUERY_RADIUS_M, limit: 1 }),
    })
      .then(function (r) {
        if (!r.ok) throw new Error("frame query: HTTP " + r.status);
        return r.json();
      })
      .then(function (fc) {
        if (seq !== clickSeq) return;
        const f = fc && Array.isArray(fc.features) ? fc.features[0] : null;
        if (!f || !f.properties || f.properties.id === undefined) {
          showFrame(null, extras);
          return;
        }
        const p = f.properties;
        showFrame({
          id: p.id,
          time: p.captured_at,
          heading: p.heading,
          capture_id: p.capture_id,
          lngLat: f.geometry && f.geometry.type === "Point" ? f.geometry.coordinates : null,
        }, extras);
      })
      .catch(function (err) {
        if (seq !== clickSeq) return;
        showFrame(null, extras);
        panel.appendChild(el("div", { class: "hint" }, String(err.message || err)));
      });
  });

  // Frames and features are clickable: show a pointer over them.
  for (const id of ["frames-circle", "features-circle"]) {
    map.on("mouseenter", id, function () { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", id, function () { map.getCanvas().style.cursor = ""; });
  }
})();

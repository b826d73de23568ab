"""The 3D view (objectName ``view3D``): the objects' surfaces in their colours, rotated with the mouse.

Surfaces come from :func:`engine.data.surface.label_surfaces` (RAS mm, outward normals), computed on the
view's own worker thread (a one-thread QThreadPool owned by the application, so the view can be deleted
at any time and nothing has to be joined: a request that is no longer the newest is skipped, or stopped
between objects) 200 ms after the last change of the label map, and only while the view is visible
(a hidden view catches up when it is shown). The label map is copied on the GUI thread before it is handed
over. Colour or visibility changes redraw without recomputing.

Rendering is Qt's own OpenGL: a QOpenGLWidget drawn through QtGui's QOpenGLFunctions (GLSL 1.10 / ES 1.00
shaders: two-sided Lambert + ambient from a head light; no PySide6.QtOpenGL, see the note at the
constants). Where no OpenGL 2.0 context can be made (``QT_QPA_PLATFORM=offscreen`` without a display, a
remote desktop without drivers, ``BOXSEG_NO_GL=1``) ``available`` is False, ``reason`` says why and the
view shows that sentence instead; the main window hides it.

Mouse: left drag turns the scene around the objects' centre (turntable: azimuth about the patient's S
axis, elevation), the wheel zooms, a right or middle drag pans, a double click resets. The first view looks
at the patient from the front (anterior), the patient's right on the screen's left, superior up.
"""

from __future__ import annotations

import itertools
import math
import os
import traceback

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QPointF, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QImage, QMatrix4x4, QOffscreenSurface, QOpenGLContext, QVector3D
from PySide6.QtOpenGLWidgets import QOpenGLWidget
from PySide6.QtWidgets import QLabel, QStackedLayout, QWidget

from engine.base.errors import Cancelled
from engine.data.surface import Mesh, label_surfaces

DEBOUNCE_MS = 200
#: triangles per object; a few hundred thousand draw at interactive rates even on software OpenGL
MAX_TRIANGLES = 300_000
FOV_DEG = 30.0
BACKGROUND = (0.11, 0.11, 0.13)

GL_COLOR_BUFFER_BIT, GL_DEPTH_BUFFER_BIT = 0x4000, 0x0100
GL_DEPTH_TEST, GL_TRIANGLES, GL_UNSIGNED_INT, GL_FLOAT = 0x0B71, 0x0004, 0x1405, 0x1406
GL_VERTEX_SHADER, GL_FRAGMENT_SHADER = 0x8B31, 0x8B30
GL_ARRAY_BUFFER, GL_ELEMENT_ARRAY_BUFFER = 0x8892, 0x8893

# Only QtGui's QOpenGLFunctions (no PySide6.QtOpenGL: its module is 8.9 MB, which the installer's 300 MB
# budget has not got). Its PySide6 bindings take names as str (bytes crash), cannot return through
# array arguments and crash on glUniformMatrix4fv, and QtGui has no glBufferData: so the shader gets its
# matrix as four column vectors, link failures are seen as a missing attribute, and the meshes are drawn
# from client-side arrays (the numpy arrays themselves; OpenGL 2.x / ES 2.0 and compatibility profiles).

#: desktop GLSL 1.10 has no precision qualifiers (QOpenGLShaderProgram would add these defines itself)
PRECISION = """
#ifdef GL_ES
precision mediump float;
#else
#define highp
#define mediump
#define lowp
#endif
"""
VERTEX_SHADER = PRECISION + """
attribute highp vec3 position;
attribute highp vec3 normal;
uniform highp vec4 mvp0;
uniform highp vec4 mvp1;
uniform highp vec4 mvp2;
uniform highp vec4 mvp3;
varying highp vec3 worldNormal;
void main() {
    worldNormal = normal;
    gl_Position = mat4(mvp0, mvp1, mvp2, mvp3) * vec4(position, 1.0);
}
"""
FRAGMENT_SHADER = PRECISION + """
uniform vec3 color;
uniform vec3 light;
varying highp vec3 worldNormal;
void main() {
    float lambert = abs(dot(normalize(worldNormal), light));   /* two-sided: inner faces lit as well */
    gl_FragColor = vec4(color * (0.28 + 0.72 * lambert), 1.0);
}
"""

_GL_STATUS: tuple[bool, str] | None = None


def gl_status() -> tuple[bool, str]:
    """(available, reason): whether an OpenGL 2.0+ context can be made on this platform (checked once)."""
    global _GL_STATUS
    if _GL_STATUS is None:
        _GL_STATUS = _probe()
    return _GL_STATUS


def _probe() -> tuple[bool, str]:
    if os.environ.get("BOXSEG_NO_GL"):
        return False, "3D view off (BOXSEG_NO_GL is set)"
    app = QCoreApplication.instance()
    platform = app.platformName() if hasattr(app, "platformName") else "?"
    ctx = QOpenGLContext()
    if not ctx.create():
        return False, f"3D view unavailable: no OpenGL context on the '{platform}' Qt platform"
    surface = QOffscreenSurface()
    surface.setFormat(ctx.format())
    surface.create()
    try:
        if not ctx.makeCurrent(surface):
            return False, f"3D view unavailable: the OpenGL context of the '{platform}' platform cannot be used"
        f = ctx.format()
        version = (f.majorVersion(), f.minorVersion())
        if version < (2, 0):
            return False, f"3D view unavailable: OpenGL 2.0 needed, this system has {version[0]}.{version[1]}"
        ctx.doneCurrent()
        return True, ""
    finally:
        surface.destroy()


class Camera:
    """Turntable camera around ``target`` (RAS mm): azimuth about S, elevation, distance; perspective."""

    def __init__(self):
        self.fit(np.zeros(3), 100.0)

    def fit(self, center, radius: float) -> None:
        self.target = np.asarray(center, np.float64).copy()
        self.radius = max(float(radius), 1.0)
        self.azimuth, self.elevation = 0.0, 0.0
        self.distance = self.radius / math.sin(math.radians(FOV_DEG) / 2) * 1.1

    def eye_direction(self) -> np.ndarray:
        """Unit vector from the target to the eye; (0, 1, 0) = from the patient's front."""
        az, el = math.radians(self.azimuth), math.radians(self.elevation)
        return np.array([math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)])

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """(right, up) unit vectors of the screen in RAS."""
        back = self.eye_direction()
        right = np.cross(np.array([0.0, 0.0, 1.0]), back)
        right /= np.linalg.norm(right)
        return right, np.cross(back, right)

    def light(self) -> np.ndarray:
        """Unit direction towards the light in RAS: from the viewer, a little above and to the left."""
        right, up = self.axes()
        d = self.eye_direction() + 0.45 * up - 0.3 * right
        return d / np.linalg.norm(d)

    def view(self) -> QMatrix4x4:
        m = QMatrix4x4()
        eye = self.target + self.distance * self.eye_direction()
        m.lookAt(QVector3D(*eye), QVector3D(*self.target), QVector3D(0.0, 0.0, 1.0))
        return m

    def projection(self, aspect: float) -> QMatrix4x4:
        m = QMatrix4x4()
        near = max(self.distance - 2 * self.radius, self.distance * 0.01)
        m.perspective(FOV_DEG, max(aspect, 1e-3), near, self.distance + 2 * self.radius)
        return m

    def rotate(self, dx: float, dy: float) -> None:
        self.azimuth = (self.azimuth - 0.5 * dx) % 360.0
        self.elevation = float(np.clip(self.elevation + 0.5 * dy, -89.0, 89.0))

    def pan(self, dx: float, dy: float, height: int) -> None:
        mm_per_px = 2 * self.distance * math.tan(math.radians(FOV_DEG) / 2) / max(height, 1)
        right, up = self.axes()
        self.target = self.target - dx * mm_per_px * right + dy * mm_per_px * up

    def zoom(self, steps: float) -> None:
        self.distance = float(np.clip(self.distance * 0.85 ** steps, self.radius * 0.05, self.radius * 50))


class SurfaceGL(QOpenGLWidget):
    """The OpenGL canvas: each visible object's mesh drawn in its colour (see the note on the bindings)."""

    failed = Signal(str)

    def __init__(self, view: "View3D"):
        super().__init__(view)
        self.setObjectName("view3DCanvas")
        self.v = view
        self.camera = Camera()
        self.program = 0
        self.loc: dict[str, int] = {}
        self._drag: tuple[Qt.MouseButton, QPointF] | None = None
        self.frames = 0
        self.setMinimumSize(120, 120)

    def initializeGL(self) -> None:
        f = self.context().functions()
        f.initializeOpenGLFunctions()
        program = f.glCreateProgram()
        for kind, source in ((GL_VERTEX_SHADER, VERTEX_SHADER), (GL_FRAGMENT_SHADER, FRAGMENT_SHADER)):
            sh = f.glCreateShader(kind)
            f.glShaderSource(sh, source)
            f.glCompileShader(sh)
            f.glAttachShader(program, sh)
            f.glDeleteShader(sh)  # freed with the program
        f.glLinkProgram(program)
        loc = {n: f.glGetAttribLocation(program, n) for n in ("position", "normal")}
        loc.update({n: f.glGetUniformLocation(program, n)
                    for n in ("mvp0", "mvp1", "mvp2", "mvp3", "color", "light")})
        if min(loc.values()) < 0:  # an attribute or uniform is missing only when compiling or linking failed
            f.glDeleteProgram(program)
            self.failed.emit("3D view unavailable: this system's OpenGL does not build the view's shaders")
            return
        self.program, self.loc = program, loc

    def set_meshes(self, _meshes: dict[int, Mesh]) -> None:
        self.update()

    def paintGL(self) -> None:
        f = self.context().functions()
        f.glClearColor(*BACKGROUND, 1.0)
        f.glClear(GL_COLOR_BUFFER_BIT | GL_DEPTH_BUFFER_BIT)
        if not self.program:
            return
        f.glEnable(GL_DEPTH_TEST)
        ratio = self.devicePixelRatioF()
        f.glViewport(0, 0, int(self.width() * ratio), int(self.height() * ratio))
        cam, loc = self.camera, self.loc
        mvp = cam.projection(self.width() / max(self.height(), 1)) * cam.view()
        f.glUseProgram(self.program)
        for k in range(4):
            col = mvp.column(k)
            f.glUniform4f(loc[f"mvp{k}"], col.x(), col.y(), col.z(), col.w())
        f.glUniform3f(loc["light"], *(float(x) for x in cam.light()))
        f.glBindBuffer(GL_ARRAY_BUFFER, 0)
        f.glBindBuffer(GL_ELEMENT_ARRAY_BUFFER, 0)
        f.glEnableVertexAttribArray(loc["position"])
        f.glEnableVertexAttribArray(loc["normal"])
        colors = {o.value: o.color for o in self.v.c.doc.objects if o.visible}
        for value, m in self.v.meshes.items():
            if value not in colors or not m.triangles:
                continue
            r, g, b = (c / 255.0 for c in colors[value])
            f.glUniform3f(loc["color"], r, g, b)
            f.glVertexAttribPointer(loc["position"], 3, GL_FLOAT, 0, 0, m.vertices)
            f.glVertexAttribPointer(loc["normal"], 3, GL_FLOAT, 0, 0, m.normals)
            f.glDrawElements(GL_TRIANGLES, 3 * m.triangles, GL_UNSIGNED_INT, m.faces)
        f.glDisableVertexAttribArray(loc["position"])
        f.glDisableVertexAttribArray(loc["normal"])
        f.glUseProgram(0)
        self.frames += 1

    # --- mouse ---------------------------------------------------------------------------------------
    def mousePressEvent(self, e):
        self._drag = (e.button(), e.position())
        e.accept()

    def mouseMoveEvent(self, e):
        if self._drag is None:
            return
        button, last = self._drag
        d = e.position() - last
        self._drag = (button, e.position())
        if button == Qt.LeftButton:
            self.camera.rotate(d.x(), d.y())
        elif button in (Qt.RightButton, Qt.MiddleButton):
            self.camera.pan(d.x(), d.y(), self.height())
        self.update()
        e.accept()

    def mouseReleaseEvent(self, e):
        self._drag = None
        e.accept()

    def mouseDoubleClickEvent(self, e):
        self.v.reset_camera()
        e.accept()

    def wheelEvent(self, e):
        self.camera.zoom(e.angleDelta().y() / 120.0)
        self.update()
        e.accept()


class _Relay(QObject):
    """Carries results from the pool's thread to the GUI thread (lives as long as the application)."""

    done = Signal(int, int, object)     # view id, request, {value: Mesh}
    failed = Signal(int, int, str)      # view id, request, message


_POOL: QThreadPool | None = None
_VIEW_IDS = itertools.count(1)
_RELAY: _Relay | None = None


def _pool() -> tuple[QThreadPool, _Relay]:
    global _POOL, _RELAY
    if _POOL is None:
        app = QCoreApplication.instance()
        _POOL = QThreadPool(app)  # the application waits for it when it is deleted
        _POOL.setMaxThreadCount(1)
        _POOL.setObjectName("boxseg-surfaces")
        _RELAY = _Relay(app)
    return _POOL, _RELAY


class _SurfaceJob(QRunnable):
    def __init__(self, view_id: int, gen: int, labels: np.ndarray, affine: np.ndarray, is_stale):
        super().__init__()
        self.args = view_id, gen, labels, affine, is_stale

    def run(self) -> None:
        view_id, gen, labels, affine, is_stale = self.args
        _, relay = _pool()
        if is_stale():
            return  # a newer request is queued behind this one
        try:
            meshes = label_surfaces(labels, affine, max_triangles=MAX_TRIANGLES, should_stop=is_stale)
        except Cancelled:
            return
        except Exception as e:  # noqa: BLE001 - a failed surface must never take the worker down
            traceback.print_exc()
            relay.failed.emit(view_id, gen, f"{type(e).__name__}: {e}")
            return
        relay.done.emit(view_id, gen, meshes)


class View3D(QWidget):
    """See the module docstring. ``controller``: the app's Controller (``image``, ``doc`` with ``labels``,
    ``objects`` and their signals). Nothing to join when it is deleted (see the module docstring)."""

    #: the meshes of the newest label map are in (and drawn on the next paint); the number of triangles
    meshesReady = Signal(int)
    #: OpenGL turned out unusable after construction (shaders failed); the reason
    unavailable = Signal(str)

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.setObjectName("view3D")
        self.c = controller
        self.available, self.reason = gl_status()
        self.meshes: dict[int, Mesh] = {}
        self._posted = 0        # requests posted to the worker
        self._shown = 0         # the request whose meshes are shown
        self._dirty = True      # the label map changed since the last request
        self._fitted = False    # the camera was fitted to the objects of this image
        self._closed = False
        self._id = next(_VIEW_IDS)  # tells this view's results from another's on the shared relay
        self._layout = QStackedLayout(self)
        self.message = QLabel(self.reason, self)
        self.message.setObjectName("view3DMessage")
        self.message.setAlignment(Qt.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #aaa; background: #1c1c21;")
        self.gl: SurfaceGL | None = None
        if self.available:
            self.gl = SurfaceGL(self)
            self.gl.failed.connect(self._gl_failed)
            self._layout.addWidget(self.gl)
        self._layout.addWidget(self.message)
        self._layout.setCurrentWidget(self.gl if self.gl is not None else self.message)

        self.pool, relay = _pool()
        relay.done.connect(self._on_done)
        relay.failed.connect(self._on_failed)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._post)

        controller.imageOpened.connect(self._image_changed)
        controller.doc.imageChanged.connect(self._image_changed)
        controller.doc.labelsChanged.connect(self._labels_changed)
        controller.doc.objectsChanged.connect(self._objects_changed)

    # --- state -----------------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """True while the shown meshes are not those of the current label map."""
        return self._dirty or self._timer.isActive() or self._shown < self._posted

    @property
    def triangles(self) -> int:
        """Triangles of the visible objects' meshes."""
        visible = {o.value for o in self.c.doc.objects if o.visible}
        return sum(m.triangles for v, m in self.meshes.items() if v in visible)

    def render_image(self) -> QImage:
        """The view as an image (the OpenGL frame when available; the message otherwise)."""
        if self.gl is not None and self.available:
            return self.gl.grabFramebuffer()
        return self.grab().toImage()

    def reset_camera(self) -> None:
        """Fit the camera to the objects (to the image's box when there are none), seen from the front."""
        if self.gl is None:
            return
        if self.meshes:
            lo = np.min([m.vertices.min(0) for m in self.meshes.values()], axis=0).astype(np.float64)
            hi = np.max([m.vertices.max(0) for m in self.meshes.values()], axis=0).astype(np.float64)
        elif self.c.image is not None:
            z, y, x = self.c.image.shape
            corners = np.array([[i, j, k] for i in (0, x - 1) for j in (0, y - 1) for k in (0, z - 1)], np.float64)
            a = self.c.image.affine
            world = corners @ a[:3, :3].T + a[:3, 3]
            lo, hi = world.min(0), world.max(0)
        else:
            lo, hi = np.full(3, -50.0), np.full(3, 50.0)
        self.gl.camera.fit((lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2)
        self.gl.update()

    def shutdown(self) -> None:
        """Stop updating: a waiting or running computation for this view is dropped (optional; see above)."""
        self._timer.stop()
        self._posted += 1
        self._closed = True

    # --- updates -----------------------------------------------------------------------------------
    def _image_changed(self) -> None:
        self._fitted = False
        self.meshes = {}
        if self.gl is not None:
            self.gl.set_meshes({})
            self.reset_camera()
        self._labels_changed()

    def _labels_changed(self, *_slices) -> None:
        self._dirty = True
        if self.isVisible():
            self._timer.start()

    def _objects_changed(self) -> None:
        if self.gl is not None:
            self.gl.update()

    def showEvent(self, e):
        super().showEvent(e)
        if self._dirty:
            self._timer.start()

    def _post(self) -> None:
        if not self.isVisible() or self._closed:
            return
        doc = self.c.doc
        self._dirty = False
        self._posted += 1
        gen = self._posted
        if doc.labels is None or doc.image is None:
            self._on_done(self._id, gen, {})
            return
        labels = doc.labels.copy()  # the GUI thread edits doc.labels in place
        affine = doc.image.affine.copy()

        def stale() -> bool:
            return self._posted != gen

        self.pool.start(_SurfaceJob(self._id, gen, labels, affine, stale))

    def _on_done(self, view_id: int, gen: int, meshes) -> None:
        if view_id != self._id or gen != self._posted:
            return  # a newer request is on its way
        self._shown = gen
        self.meshes = meshes
        if self.gl is not None:
            self.gl.set_meshes(meshes)
            if not self._fitted and meshes:
                self._fitted = True
                self.reset_camera()
        self.meshesReady.emit(sum(m.triangles for m in meshes.values()))

    def _on_failed(self, view_id: int, gen: int, message: str) -> None:
        if view_id == self._id and gen == self._posted:
            self._shown = gen
            self.c.error.emit(f"3D view: {message}")

    def _gl_failed(self, reason: str) -> None:
        self.available, self.reason = False, reason
        self.message.setText(reason)
        self._layout.setCurrentWidget(self.message)
        self.unavailable.emit(reason)


__all__ = ["Camera", "SurfaceGL", "View3D", "gl_status"]

"""Conversions from the core's cell glyphs to visualization_msgs markers (free functions)."""

from __future__ import annotations

from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker

from plant_disease_ros.core.map_markers import CellGlyph, SPHERE

SHAPE_NAMESPACE = 'disease_cells'
CAPTION_NAMESPACE = 'disease_cell_labels'
# The Marker fields each cell marker sets itself; it shares the others (see below).
OWN_FIELDS = frozenset({'ns', 'id', 'type', 'action', 'pose', 'scale', 'color', 'text'})


class SharedMarkerParts:
    """What every cell marker in one frame has in common, built once for all of them.

    A marker built alone holds its own header, orientation, lifetime, texture, mesh file
    and empty point, colour and UV lists: on a map that keeps two markers per cell that
    is most of their memory (``benchmarks/results/2026-12-07-recorder-memory.md``). The
    markers built with one instance share these objects, so they must be read, never
    changed: another frame takes another instance.
    """

    def __init__(self, frame_id: str) -> None:
        """Build the parts shared by the markers in ``frame_id``."""
        self.frame_id = frame_id
        self.orientation = Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)
        self.caption_color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        self._caption_scale = Vector3()
        # The other fields' values of one marker in the frame, as keyword arguments of
        # Marker(): those of the distribution's Marker, whichever it has.
        template = Marker(header=Header(frame_id=frame_id))
        self._fields = {name: getattr(template, name)
                        for name in Marker.get_fields_and_field_types()
                        if name not in OWN_FIELDS}

    def caption_scale(self, height_m: float) -> Vector3:
        """Return a caption scale of text height ``height_m``, shared while it stays."""
        if self._caption_scale.z != height_m:
            self._caption_scale = Vector3(x=0.0, y=0.0, z=height_m)
        return self._caption_scale

    def marker(self, namespace: str, marker_id: int, marker_type: int,
               position: Point) -> Marker:
        """Return an ADD marker at ``position`` (identity orientation) with the shared parts.

        Its scale and colour are left for the caller to set.
        """
        return Marker(ns=namespace, id=marker_id, type=marker_type, action=Marker.ADD,
                      pose=Pose(position=position, orientation=self.orientation),
                      **self._fields)


def delete_all_marker() -> Marker:
    """Return the marker that clears what an earlier session left in RViz."""
    return Marker(action=Marker.DELETEALL)


def glyph_to_markers(glyph: CellGlyph, marker_id: int,
                     frame: str | SharedMarkerParts) -> tuple[Marker, Marker]:
    """Return the shape and the caption marker of one cell, both with id ``marker_id``.

    ``frame``: the frame id, or the :class:`SharedMarkerParts` of a frame, whose objects
    the markers then share with the others built with it (read them, do not change them).
    """
    parts = SharedMarkerParts(frame) if isinstance(frame, str) else frame
    shape = parts.marker(
        SHAPE_NAMESPACE, marker_id, Marker.SPHERE if glyph.shape == SPHERE else Marker.CYLINDER,
        Point(x=glyph.east_m, y=glyph.north_m, z=glyph.height_m / 2.0))
    shape.scale = Vector3(x=glyph.width_m, y=glyph.width_m, z=glyph.height_m)
    red, green, blue, alpha = glyph.rgba
    shape.color = ColorRGBA(r=red, g=green, b=blue, a=alpha)

    caption = parts.marker(CAPTION_NAMESPACE, marker_id, Marker.TEXT_VIEW_FACING,
                           Point(x=glyph.east_m, y=glyph.north_m, z=glyph.caption_z_m))
    caption.scale = parts.caption_scale(glyph.caption_height_m)
    caption.color = parts.caption_color
    caption.text = glyph.caption
    return shape, caption

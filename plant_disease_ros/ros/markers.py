"""Conversions from the core's cell glyphs to visualization_msgs markers (free functions)."""

from __future__ import annotations

from visualization_msgs.msg import Marker

from plant_disease_ros.core.map_markers import CellGlyph, SPHERE

SHAPE_NAMESPACE = 'disease_cells'
CAPTION_NAMESPACE = 'disease_cell_labels'


def delete_all_marker() -> Marker:
    """Return the marker that clears what an earlier session left in RViz."""
    return Marker(action=Marker.DELETEALL)


def glyph_to_markers(glyph: CellGlyph, marker_id: int, frame_id: str) -> tuple[Marker, Marker]:
    """Return the shape and the caption marker of one cell, both with id ``marker_id``."""
    shape = Marker()
    shape.header.frame_id = frame_id
    shape.ns = SHAPE_NAMESPACE
    shape.id = marker_id
    shape.type = Marker.SPHERE if glyph.shape == SPHERE else Marker.CYLINDER
    shape.action = Marker.ADD
    shape.pose.orientation.w = 1.0
    shape.pose.position.x = glyph.east_m
    shape.pose.position.y = glyph.north_m
    shape.pose.position.z = glyph.height_m / 2.0
    shape.scale.x = shape.scale.y = glyph.width_m
    shape.scale.z = glyph.height_m
    shape.color.r, shape.color.g, shape.color.b, shape.color.a = glyph.rgba

    caption = Marker()
    caption.header.frame_id = frame_id
    caption.ns = CAPTION_NAMESPACE
    caption.id = marker_id
    caption.type = Marker.TEXT_VIEW_FACING
    caption.action = Marker.ADD
    caption.pose.orientation.w = 1.0
    caption.pose.position.x = glyph.east_m
    caption.pose.position.y = glyph.north_m
    caption.pose.position.z = glyph.caption_z_m
    caption.scale.z = glyph.caption_height_m
    caption.color.r = caption.color.g = caption.color.b = caption.color.a = 1.0
    caption.text = glyph.caption
    return shape, caption

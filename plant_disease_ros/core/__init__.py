"""The ROS-free core: images, the TFLite classifier, GPS, detections and the disease map."""

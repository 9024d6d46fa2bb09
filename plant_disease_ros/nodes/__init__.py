"""The executables: one thin rclpy node per module, each with its own ``main``."""

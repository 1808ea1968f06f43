/* Host port internals: configuration set by main() before fc_device_init(). */
#ifndef FEDHEAD_HOST_PORT_H
#define FEDHEAD_HOST_PORT_H

#include <stdint.h>

void host_port_set_id(uint32_t id);
void host_port_set_state_path(const char *path);
void host_port_set_uart_fd(int fd);

#endif
